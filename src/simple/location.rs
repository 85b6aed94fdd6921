//! The location service: registrar bindings in memory, by address of
//! record, written through to the store by one writer task so no request
//! waits on the database.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tracing::warn;

use crate::proto::sip::Transport;
use crate::store::{BindingRow, Store};

/// One binding of an address of record to a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as sent.
    pub uri: Box<str>,
    /// The whole Contact value as sent, parameters kept exactly.
    pub contact: Box<str>,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// q-value in thousandths (1000 when absent).
    pub q: u16,
    /// Call-ID of the REGISTER that last touched it.
    pub call_id: Box<str>,
    /// Its CSeq number.
    pub cseq: u32,
    /// The Path values (RFC 3327), comma-separated, empty when none.
    pub path: Box<str>,
    /// The transport the REGISTER came over.
    pub transport: Transport,
    /// Where it came from: requests over a stream go back on that flow.
    pub source: SocketAddr,
    /// The `+sip.instance` of an outbound binding (RFC 5626), else empty.
    pub instance: Box<str>,
    /// Its `reg-id`; 0 when the binding is not an outbound flow.
    pub reg_id: u32,
    /// The User-Agent of the REGISTER that made it.
    pub user_agent: Box<str>,
    /// The node of the cluster holding it; empty for this node's own.
    /// Another node's stream binding is reached through that node (its
    /// Route leads the Path).
    pub node: Box<str>,
}

impl Binding {
    /// An RFC 5626 flow: requests go over the flow it registered on, and
    /// it ends with that flow.
    pub fn is_flow(&self) -> bool {
        self.reg_id != 0
    }

    /// The same binding: the same contact URI over the same flow number.
    fn same_key(&self, other: &Binding) -> bool {
        self.uri == other.uri && self.reg_id == other.reg_id
    }

    fn row(&self, aor: &str, node: Option<&Node>) -> BindingRow {
        let (name, route) = match node {
            Some(n) if self.node.is_empty() => (
                n.name.clone(),
                if self.transport.is_stream() {
                    (n.route)(self.transport, self.source)
                } else {
                    String::new()
                },
            ),
            _ => (self.node.to_string(), String::new()),
        };
        BindingRow {
            node: name,
            node_route: route,
            aor: aor.to_string(),
            uri: self.uri.to_string(),
            contact: self.contact.to_string(),
            expires_at: i64::try_from(self.expires_at).unwrap_or(i64::MAX),
            q: i64::from(self.q),
            call_id: self.call_id.to_string(),
            cseq: i64::from(self.cseq),
            path: self.path.to_string(),
            transport: self.transport.to_string(),
            source: self.source.to_string(),
            instance: self.instance.to_string(),
            reg_id: i64::from(self.reg_id),
            user_agent: self.user_agent.to_string(),
        }
    }

    /// The binding a stored row holds, as this node (`own`, when in a
    /// cluster) sees it: another node's stream binding is reached through
    /// that node.
    fn from_row(row: &BindingRow, own: Option<&str>) -> Option<(String, Binding)> {
        let transport = Transport::from_name(&row.transport)?;
        let remote = !row.node.is_empty() && own.is_some_and(|o| o != row.node);
        let path = match (remote, row.node_route.is_empty(), row.path.is_empty()) {
            (true, false, true) => row.node_route.clone(),
            (true, false, false) => format!("{}, {}", row.node_route, row.path),
            _ => row.path.clone(),
        };
        Some((
            row.aor.clone(),
            Binding {
                uri: row.uri.as_str().into(),
                contact: row.contact.as_str().into(),
                expires_at: u64::try_from(row.expires_at).ok()?,
                q: u16::try_from(row.q).ok()?,
                call_id: row.call_id.as_str().into(),
                cseq: u32::try_from(row.cseq).ok()?,
                path: path.into(),
                transport,
                source: row.source.parse().ok()?,
                instance: row.instance.as_str().into(),
                reg_id: u32::try_from(row.reg_id).ok()?,
                user_agent: row.user_agent.as_str().into(),
                node: if remote {
                    row.node.as_str().into()
                } else {
                    "".into()
                },
            },
        ))
    }
}

/// A change to write through.
#[derive(Debug)]
enum Write {
    Put(Box<BindingRow>),
    Remove {
        aor: String,
        uri: String,
        reg_id: u32,
    },
    Expired(i64),
}

/// This node in a cluster: its name, and the Route by which another node
/// reaches a flow of this one (a signed flow token at this node's address).
pub struct Node {
    /// The node's name (`[cluster] node`).
    pub name: String,
    /// The Route value reaching `(transport, source)` through this node.
    pub route: Box<dyn Fn(Transport, SocketAddr) -> String + Send + Sync>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Bindings by address of record (`user@domain`, lower-case domain).
pub struct Location {
    /// This node, when several share the store.
    node: Option<Node>,
    map: Mutex<HashMap<Box<str>, Vec<Binding>>>,
    /// Addresses of record whose bindings were added or refreshed (a
    /// request held for a device waits on it, RFC 8599).
    registered: tokio::sync::broadcast::Sender<Box<str>>,
    writes: mpsc::UnboundedSender<Write>,
    pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("aors", &self.aors())
            .finish_non_exhaustive()
    }
}

impl Location {
    /// Loads the unexpired bindings from the store and starts the writer;
    /// `node` is this node when several share the store.
    pub async fn load(
        store: Arc<dyn Store>,
        now: u64,
        node: Option<Node>,
    ) -> Result<Location, crate::store::StoreError> {
        let own = node.as_ref().map(|n| n.name.as_str());
        store
            .remove_expired(i64::try_from(now).unwrap_or(i64::MAX))
            .await?;
        let mut map: HashMap<Box<str>, Vec<Binding>> = HashMap::new();
        for row in store.bindings().await? {
            match Binding::from_row(&row, own) {
                Some((aor, b)) if b.expires_at > now => map.entry(aor.into()).or_default().push(b),
                Some(_) => {}
                None => warn!(aor = %row.aor, uri = %row.uri, "unreadable binding in the store"),
            }
        }
        let (writes, mut rx) = mpsc::unbounded_channel::<Write>();
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = pending.clone();
        tokio::spawn(async move {
            while let Some(w) = rx.recv().await {
                counter.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                let r = match &w {
                    Write::Put(row) => store.put_binding(row).await,
                    Write::Remove { aor, uri, reg_id } => {
                        store.remove_binding(aor, uri, i64::from(*reg_id)).await
                    }
                    Write::Expired(now) => store.remove_expired(*now).await.map(|_| ()),
                };
                if let Err(e) = r {
                    warn!(error = %e, "binding not written to the store");
                }
            }
        });
        Ok(Location {
            node,
            map: Mutex::new(map),
            registered: tokio::sync::broadcast::channel(256).0,
            writes,
            pending,
        })
    }

    /// Takes in what the store now holds for `aor` after another node
    /// changed it: the other nodes' bindings as stored, this node's own as
    /// it keeps them (they are written from here) unless another node
    /// replaced one (the same contact registered there) or removed it (it
    /// is gone from the store while nothing of this node's waits to be
    /// written). Nothing is written.
    pub fn merge(&self, aor: &str, rows: &[BindingRow]) {
        let Some(node) = &self.node else { return };
        let remote: Vec<Binding> = rows
            .iter()
            .filter(|r| r.aor == aor && !r.node.is_empty() && r.node != node.name)
            .filter_map(|r| Binding::from_row(r, Some(&node.name)).map(|(_, b)| b))
            .collect();
        let settled = self.pending_writes() == 0;
        let stored = |b: &Binding| {
            rows.iter().any(|r| {
                r.aor == aor
                    && *r.uri == *b.uri
                    && r.reg_id == i64::from(b.reg_id)
                    && (r.node.is_empty() || r.node == node.name)
            })
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<Binding> = map
            .get(aor)
            .map(|v| {
                v.iter()
                    .filter(|b| b.node.is_empty())
                    .filter(|b| !remote.iter().any(|r| r.same_key(b)))
                    .filter(|b| !settled || stored(b))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        list.extend(remote);
        if list.is_empty() {
            map.remove(aor);
        } else {
            map.insert(aor.into(), list);
        }
    }

    /// Every live binding with its address of record (for the admin API).
    pub fn all(&self, now: u64) -> Vec<(String, Binding)> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, Binding)> = map
            .iter()
            .flat_map(|(aor, list)| {
                list.iter()
                    .filter(|b| b.expires_at > now)
                    .map(move |b| (aor.to_string(), b.clone()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The live bindings of `aor`, highest q first.
    pub fn lookup(&self, aor: &str, now: u64) -> Vec<Binding> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Binding> = map
            .get(aor)
            .map(|v| v.iter().filter(|b| b.expires_at > now).cloned().collect())
            .unwrap_or_default();
        out.sort_by_key(|b| std::cmp::Reverse(b.q));
        out
    }

    /// Runs `change` on the bindings of `aor` under the lock; when it
    /// succeeds, writes the differences through and returns its result.
    pub fn update<T, E>(
        &self,
        aor: &str,
        change: impl FnOnce(&mut Vec<Binding>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut bindings = map.get(aor).cloned().unwrap_or_default();
        let before = bindings.clone();
        let out = change(&mut bindings)?;
        for old in &before {
            if !bindings.iter().any(|b| b.same_key(old)) {
                self.write(Write::Remove {
                    aor: aor.to_string(),
                    uri: old.uri.to_string(),
                    reg_id: old.reg_id,
                });
            }
        }
        for b in &bindings {
            if !before.contains(b) {
                self.write(Write::Put(Box::new(b.row(aor, self.node.as_ref()))));
            }
        }
        if bindings.is_empty() {
            map.remove(aor);
        } else {
            // Most addresses hold one binding: no spare capacity.
            bindings.shrink_to_fit();
            map.insert(aor.into(), bindings);
        }
        Ok(out)
    }

    /// The flow `(transport, source)` ended (its connection closed): the
    /// outbound bindings made over it end at once (RFC 5626 §5.3), so no
    /// request forks to a device that cannot be reached. Returns them, by
    /// address of record.
    pub fn drop_flow(&self, transport: Transport, source: SocketAddr) -> Vec<(String, Binding)> {
        let aors: Vec<String> = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.iter()
                .filter(|(_, list)| {
                    list.iter()
                        .any(|b| b.is_flow() && b.transport == transport && b.source == source)
                })
                .map(|(aor, _)| aor.to_string())
                .collect()
        };
        let mut gone = Vec::new();
        for aor in aors {
            let _ = self.update(&aor, |bindings| {
                bindings.retain(|b| {
                    // A device with push (RFC 8599) is suspended, not gone:
                    // its binding stays for the push to wake it.
                    let on_flow = b.is_flow()
                        && b.transport == transport
                        && b.source == source
                        && super::push::Device::of(&b.uri).is_none();
                    if on_flow {
                        gone.push((aor.clone(), b.clone()));
                    }
                    !on_flow
                });
                Ok::<(), ()>(())
            });
        }
        gone
    }

    /// Drops the bindings that expired by `now`, in memory and in the store.
    pub fn sweep(&self, now: u64) -> usize {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut removed = 0;
        map.retain(|_, v| {
            let before = v.len();
            v.retain(|b| b.expires_at > now);
            removed += before - v.len();
            !v.is_empty()
        });
        if removed > 0 {
            self.write(Write::Expired(i64::try_from(now).unwrap_or(i64::MAX)));
        }
        removed
    }

    fn write(&self, w: Write) {
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.writes.send(w).is_err() {
            self.pending
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Hears of each address of record that registered from now on.
    pub fn watch(&self) -> tokio::sync::broadcast::Receiver<Box<str>> {
        self.registered.subscribe()
    }

    /// `aor` registered (its REGISTER answered): requests held for its
    /// devices may go.
    pub fn announce(&self, aor: &str) {
        let _ = self.registered.send(aor.into());
    }

    /// Changes not yet written to the store.
    pub fn pending_writes(&self) -> usize {
        self.pending.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Addresses of record with at least one binding.
    pub fn aors(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }
}
