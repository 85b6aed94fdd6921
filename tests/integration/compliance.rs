//! The compliance table is data (`tests/data/compliance.toml`); the README
//! shows it rendered. This test keeps the two in step and checks that every
//! claim names a test file that exists. `PARLEY_BLESS=1` rewrites the README.

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    spec: String,
    section: String,
    title: String,
    status: String,
    note: Option<String>,
    tested_by: Option<String>,
}

#[derive(Deserialize)]
struct Table {
    entry: Vec<Entry>,
}

const START: &str = "<!-- compliance:start (rendered from tests/data/compliance.toml) -->";
const END: &str = "<!-- compliance:end -->";

fn render(table: &Table) -> String {
    let mut s = String::from("| Specification | Section | What | Status |\n|---|---|---|---|\n");
    for e in &table.entry {
        let status = match &e.note {
            Some(n) => format!("{} ({n})", e.status),
            None => e.status.clone(),
        };
        s += &format!("| {} | {} | {} | {status} |\n", e.spec, e.section, e.title);
    }
    s
}

#[test]
fn readme_table_matches_the_data() {
    let root = parley_test_support::repo_root();
    let data = std::fs::read_to_string(root.join("tests/data/compliance.toml")).unwrap();
    let table: Table = toml::from_str(&data).unwrap();
    for e in &table.entry {
        assert!(
            ["complete", "partial", "planned"].contains(&e.status.as_str()),
            "{} {}: unknown status {}",
            e.spec,
            e.section,
            e.status
        );
        match (&e.tested_by, e.status.as_str()) {
            (None, "complete" | "partial") => {
                panic!("{} {}: a claim without a test", e.spec, e.section)
            }
            (Some(t), _) => assert!(
                root.join(t).is_file(),
                "{} {}: {t} does not exist",
                e.spec,
                e.section
            ),
            _ => {}
        }
    }
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (before, rest) = readme
        .split_once(START)
        .expect("README has the compliance start marker");
    let (current, after) = rest
        .split_once(END)
        .expect("README has the compliance end marker");
    let wanted = format!("\n{}", render(&table));
    if current != wanted {
        if std::env::var_os("PARLEY_BLESS").is_some() {
            std::fs::write(&readme_path, format!("{before}{START}{wanted}{END}{after}")).unwrap();
        } else {
            panic!("README compliance table is stale; run PARLEY_BLESS=1 cargo test --test integration compliance\nwanted:\n{wanted}");
        }
    }
}
