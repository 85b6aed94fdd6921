//! The shape of the code: the layers form a DAG (each imports only those
//! below it, as the map in `src/lib.rs` draws them), `src/proto` never
//! touches a runtime, a socket or the clock, and the core is never made
//! without the router.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// What each layer may import, besides itself. `net::dns` names one
/// module of a layer: the router may resolve names without reaching the
/// transports.
const LAYERS: &[(&str, &[&str])] = &[
    ("proto", &[]),
    ("sys", &[]),
    ("config", &["proto"]),
    ("store", &["config", "proto", "sys"]),
    ("auth", &["store", "config", "proto", "sys"]),
    ("net", &["config", "proto", "sys"]),
    ("msrp", &["auth", "net", "store", "config", "proto", "sys"]),
    ("router", &["net::dns", "store", "config", "proto", "sys"]),
    (
        "simple",
        &[
            "msrp", "auth", "router", "net", "store", "config", "proto", "sys",
        ],
    ),
    (
        "hub",
        &[
            "simple", "msrp", "router", "net", "store", "config", "proto", "sys",
        ],
    ),
    (
        "admin",
        &[
            "hub", "router", "simple", "msrp", "auth", "store", "config", "proto", "sys",
        ],
    ),
    (
        "app",
        &[
            "admin", "hub", "msrp", "simple", "router", "net", "auth", "store", "config", "proto",
            "sys",
        ],
    ),
    ("cli", &["app", "admin", "store", "config", "proto", "sys"]),
];

/// The module path of a source file: `src/simple/bridge.rs` is
/// `simple::bridge`, `src/net/mod.rs` is `net`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The source without comments and without the `#[cfg(test)]` module
/// that ends a file (tests may reach anywhere).
fn code_of(text: &str) -> String {
    let cut = text
        .find("#[cfg(test)]\nmod ")
        .or_else(|| text.find("#[cfg(test)]\npub(crate) mod "))
        .unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string (a URL) is rare in paths; a line that
            // is only a comment goes whole.
            Some(i) if l[..i].trim().is_empty() => "",
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::…` and `super::…` path in `code`, resolved to an
/// absolute module path (`{…}` groups expanded one level).
fn imports(code: &str, module: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    for prefix in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(prefix) {
            let start = at + i;
            at = start + prefix.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            // `super::super::x`, then the rest of the path.
            let mut end = start;
            while end < bytes.len() && ident(bytes[end]) {
                end += 1;
            }
            let path = code[start..end].trim_end_matches(':');
            let mut heads: Vec<String> = Vec::new();
            if end < bytes.len() && bytes[end] == b'{' {
                let close = code[end..].find('}').map_or(code.len(), |c| end + c);
                for item in code[end + 1..close].split(',') {
                    let item = item.trim();
                    if !item.is_empty() && item != "self" {
                        heads.push(format!("{path}::{item}"));
                    }
                }
            } else {
                heads.push(path.to_string());
            }
            for head in heads {
                out.insert(resolve(&head, module));
            }
        }
    }
    out
}

fn resolve(path: &str, module: &[String]) -> String {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = Vec::new();
    if segments.first() == Some(&"crate") {
        segments.remove(0);
    } else {
        base = module.to_vec();
        // In `foo/mod.rs` the module is `foo`; in `foo/bar.rs` it is
        // `foo::bar`: `super` is the parent of the module either way.
        while segments.first() == Some(&"super") {
            segments.remove(0);
            base.pop();
        }
    }
    base.extend(segments.iter().map(|s| s.to_string()));
    base.join("::")
}

fn allowed(layer: &str, target: &str) -> bool {
    let first = target.split("::").next().unwrap_or("");
    if first == layer {
        return true;
    }
    let Some((_, may)) = LAYERS.iter().find(|(l, _)| *l == layer) else {
        return false;
    };
    may.iter()
        .any(|m| target == *m || target.starts_with(&format!("{m}::")))
}

#[test]
fn the_layers_form_a_dag() {
    let src = parley_test_support::repo_root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let module = module_of(&src, file);
        let Some(layer) = module.first().cloned() else {
            continue;
        };
        // The crate root and the binary sit above every layer.
        if layer == "lib" || layer == "main" {
            continue;
        }
        assert!(
            LAYERS.iter().any(|(l, _)| *l == layer),
            "{} belongs to no layer: add it to the map in src/lib.rs and here",
            file.display()
        );
        let text = std::fs::read_to_string(file).unwrap();
        for target in imports(&code_of(&text), &module) {
            checked += 1;
            if !allowed(&layer, &target) {
                violations.push(format!(
                    "{}: {layer} imports {target}",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        checked > 200,
        "only {checked} imports found: the scan broke"
    );
    assert!(
        violations.is_empty(),
        "imports against the layer map:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scan_sees_what_it_must() {
    let module = vec!["simple".to_string(), "bridge".to_string()];
    let found = imports(
        "use super::{presence, Core};\nuse crate::net::{Incoming, Sip};\nlet x = crate::hub::Hub::new();",
        &module,
    );
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(
        found,
        [
            "hub::Hub::new",
            "net::Incoming",
            "net::Sip",
            "simple::Core",
            "simple::presence"
        ]
    );
    assert!(!allowed("router", "net::Sip"));
    assert!(allowed("router", "net::dns::Resolver"));
    assert!(!allowed("simple", "hub::Hub"));
    assert!(!allowed("net", "simple::Core"));
    assert!(allowed("app", "admin::serve"));
    // Tests at the end of a file may reach anywhere.
    assert!(
        !code_of("use crate::a;\n#[cfg(test)]\nmod tests {\n use crate::b;\n}")
            .contains("crate::b")
    );
}

#[test]
fn the_core_is_made_from_the_router() {
    let src = parley_test_support::repo_root().join("src");
    let core = std::fs::read_to_string(src.join("simple/mod.rs")).unwrap();
    let fields = &core[core.find("pub struct Core {").expect("Core")..];
    let fields = &fields[..fields.find("\n}").unwrap()];
    assert!(
        fields.contains("pub router: Arc<Router>,"),
        "Core must hold the router itself, not an optional one:\n{fields}"
    );
    let ctor = &core[core.find("pub async fn new(").expect("Core::new")..];
    let ctor = &ctor[..ctor.find('{').unwrap()];
    assert!(
        ctor.contains("router: Arc<Router>"),
        "Core::new takes the router"
    );
    // A Core is built in one place, its constructor: a struct literal
    // anywhere else could leave the router out of a future version.
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut literals = 0;
    for f in &files {
        let text = code_of(&std::fs::read_to_string(f).unwrap());
        for (i, _) in text.match_indices("Core {") {
            let before = text[..i].trim_end();
            let declares = ["struct", "impl", "for"]
                .iter()
                .any(|w| before.ends_with(w));
            let word = text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            if !declares && !word {
                literals += 1;
            }
        }
    }
    assert_eq!(literals, 1, "one constructor: no other way to make a Core");
    // No back-pointers: nothing is set after construction, nothing points
    // up a layer.
    for f in files {
        let text = code_of(&std::fs::read_to_string(&f).unwrap());
        for word in [
            "OnceLock<Arc<",
            "Weak<Core>",
            "Weak<Router>",
            "Weak<Gateway>",
        ] {
            assert!(!text.contains(word), "{}: {word}", f.display());
        }
    }
}

#[test]
fn proto_is_sans_io() {
    let root = parley_test_support::repo_root().join("src/proto");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 10, "src/proto went missing");
    let forbidden = [
        "tokio",
        "std::net::UdpSocket",
        "std::net::TcpStream",
        "std::net::TcpListener",
        "UdpSocket",
        "TcpStream",
        "Instant::now",
        "SystemTime::now",
        "std::thread::sleep",
        "std::fs",
    ];
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for word in forbidden {
            if text.contains(word) {
                found.push(format!("{}: {word}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "I/O in src/proto:\n{}", found.join("\n"));
}
