//! The rules of an MSRP session's endpoint (RFC 4975 §7): splitting a
//! message into chunks, putting received chunks back together (in any
//! order, duplicates and overlaps allowed), when to answer and when to
//! report, and the 30-second response timer (408). Time is passed in.

use std::collections::HashMap;

use super::message::{ByteRange, Flag, Head, Report};
use super::uri::MsrpUri;

/// RFC 4975 §7.1: a SEND's sender waits this long for the response before
/// treating the transaction as failed with 408.
pub const RESPONSE_TIMEOUT_SECS: u64 = 30;

/// One message put back together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `Message-ID`.
    pub message_id: String,
    /// `Content-Type` of its chunks.
    pub content_type: String,
    /// The whole body.
    pub body: Vec<u8>,
    /// Whether the sender asked for a success report.
    pub success_report: bool,
    /// Whether the sender wants to hear of a failure (`Failure-Report`
    /// other than `no`).
    pub failure_report: bool,
}

/// What a received chunk came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Kept; the message is not complete yet.
    Partial,
    /// The last missing piece: here is the message.
    Complete(Received),
    /// The sender abandoned the message (`#`); what had come is dropped.
    Aborted,
    /// Refused with this status (413 too large, 400 malformed range, 415
    /// a type not accepted); whatever had come of the message is dropped.
    Refused(u16, &'static str),
}

#[derive(Debug)]
struct Partial {
    content_type: String,
    /// Known once a chunk states it or the `$` chunk arrives.
    total: Option<u64>,
    data: Vec<u8>,
    /// Received ranges, 0-based half-open, sorted and merged.
    have: Vec<(u64, u64)>,
    success_report: bool,
    failure_report: bool,
    /// When the last chunk came.
    touched: u64,
}

/// Reassembles the messages of one session.
#[derive(Debug)]
pub struct Reassembly {
    max_message: u64,
    max_in_progress: usize,
    partial: HashMap<String, Partial>,
}

impl Reassembly {
    /// At most `max_message` bytes per message, `max_in_progress` messages
    /// half received at once.
    pub fn new(max_message: u64, max_in_progress: usize) -> Reassembly {
        Reassembly {
            max_message,
            max_in_progress,
            partial: HashMap::new(),
        }
    }

    /// Messages half received.
    pub fn in_progress(&self) -> usize {
        self.partial.len()
    }

    /// Takes one SEND chunk: its head, its whole body and its flag.
    pub fn chunk(&mut self, head: &Head, body: &[u8], flag: Flag, now: u64) -> Chunked {
        let Some(id) = head.message_id() else {
            return Chunked::Refused(400, "no Message-ID");
        };
        let id = id.trim().to_string();
        if flag == Flag::Abort {
            self.partial.remove(&id);
            return Chunked::Aborted;
        }
        let Some(range) = head.byte_range() else {
            self.partial.remove(&id);
            return Chunked::Refused(400, "malformed Byte-Range");
        };
        let len = body.len() as u64;
        let start = range.start - 1;
        let end = start + len;
        // The body's length decides where the chunk ends: RFC 4975's own
        // examples state ranges their bodies do not fill (§4: 1-25/25 for
        // 23 bytes), and a range end past the body would write nothing.
        // The `$` chunk fixes the size when no chunk stated it.
        let total = range.total.or((flag == Flag::End).then_some(end));
        if total.is_some_and(|t| t > self.max_message) || end > self.max_message {
            self.partial.remove(&id);
            return Chunked::Refused(413, "message larger than max-size");
        }
        if total.is_some_and(|t| end > t) {
            self.partial.remove(&id);
            return Chunked::Refused(400, "Byte-Range past the total");
        }
        let content_type = head.content_type().unwrap_or("").to_string();
        // The whole message in one chunk: no copy into the table.
        if start == 0 && flag == Flag::End && !self.partial.contains_key(&id) {
            return Chunked::Complete(Received {
                message_id: id,
                content_type,
                body: body.to_vec(),
                success_report: head.success_report() == Report::Yes,
                failure_report: head.failure_report() != Report::No,
            });
        }
        if !self.partial.contains_key(&id) && self.partial.len() >= self.max_in_progress {
            return Chunked::Refused(413, "too many messages in progress");
        }
        let p = self.partial.entry(id.clone()).or_insert_with(|| Partial {
            content_type: content_type.clone(),
            total: None,
            data: Vec::new(),
            have: Vec::new(),
            success_report: false,
            failure_report: head.failure_report() != Report::No,
            touched: now,
        });
        p.touched = now;
        if p.content_type.is_empty() {
            p.content_type = content_type;
        }
        p.success_report |= head.success_report() == Report::Yes;
        match (p.total, total) {
            (Some(a), Some(b)) if a != b => {
                self.partial.remove(&id);
                return Chunked::Refused(400, "chunks disagree on the total");
            }
            (None, Some(t)) => {
                if p.have.last().is_some_and(|(_, e)| *e > t) {
                    self.partial.remove(&id);
                    return Chunked::Refused(400, "Byte-Range past the total");
                }
                p.total = Some(t);
            }
            _ => {}
        }
        if (p.data.len() as u64) < end {
            p.data.resize(end as usize, 0);
        }
        p.data[start as usize..end as usize].copy_from_slice(body);
        if len > 0 {
            add_range(&mut p.have, start, end);
        }
        let complete = p
            .total
            .is_some_and(|t| t == 0 || p.have.first().is_some_and(|r| *r == (0, t)));
        if !complete {
            return Chunked::Partial;
        }
        let p = self.partial.remove(&id).expect("present");
        Chunked::Complete(Received {
            message_id: id,
            content_type: p.content_type,
            body: p.data,
            success_report: p.success_report,
            failure_report: p.failure_report,
        })
    }

    /// Drops messages no chunk has come for in `idle` seconds; their
    /// Message-IDs, for failure reports.
    pub fn expire(&mut self, now: u64, idle: u64) -> Vec<String> {
        let gone: Vec<String> = self
            .partial
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.touched) >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.partial.remove(id);
        }
        gone
    }
}

/// Merges `[start, end)` into sorted, disjoint ranges.
fn add_range(have: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    let at = have.partition_point(|r| r.1 < start);
    let mut s = start;
    let mut e = end;
    let mut until = at;
    while until < have.len() && have[until].0 <= e {
        s = s.min(have[until].0);
        e = e.max(have[until].1);
        until += 1;
    }
    have.splice(at..until, [(s, e)]);
}

/// Whether a request with these report fields gets a transaction response
/// with `code` (RFC 4975 §7.2): `Failure-Report: no` never, `partial` only
/// for failures, otherwise always. REPORT requests are never answered.
pub fn answers(head: &Head, code: u16) -> bool {
    if head.method() == Some("REPORT") {
        return false;
    }
    match head.failure_report() {
        Report::No => false,
        Report::Partial => code != 200,
        Report::Yes => true,
    }
}

/// The chunks of one message: heads (Byte-Range, Message-ID, Content-Type
/// and the report fields set) and the slice of the body each carries.
pub fn chunks<'a>(
    template: &Head,
    message_id: &str,
    content_type: &str,
    body: &'a [u8],
    max_chunk: usize,
    mut next_tid: impl FnMut() -> String,
) -> Vec<(Head, &'a [u8], Flag)> {
    let total = body.len() as u64;
    let size = max_chunk.max(1);
    let mut out = Vec::with_capacity(body.len() / size + 1);
    let mut offset = 0usize;
    loop {
        let end = (offset + size).min(body.len());
        let piece = &body[offset..end];
        let last = end == body.len();
        let mut head = template.clone();
        head.tid = next_tid();
        head.headers.retain(|(n, _)| {
            !["Message-ID", "Byte-Range", "Content-Type"]
                .iter()
                .any(|x| x.eq_ignore_ascii_case(n))
        });
        head.headers
            .insert(0, ("Message-ID".into(), message_id.into()));
        let range = ByteRange {
            start: offset as u64 + 1,
            end: Some(end as u64),
            total: Some(total),
        };
        head.headers
            .insert(1, ("Byte-Range".into(), range.to_string()));
        head.headers
            .push(("Content-Type".into(), content_type.into()));
        head.has_body = true;
        out.push((head, piece, if last { Flag::End } else { Flag::More }));
        if last {
            return out;
        }
        offset = end;
    }
}

/// The REPORT for a received message (RFC 4975 §7.1.2): to the sender's
/// path, for the whole byte range, with `code`.
pub fn report(
    to_path: Vec<MsrpUri>,
    own: &MsrpUri,
    tid: &str,
    message_id: &str,
    total: u64,
    code: u16,
) -> Head {
    let comment = super::message::reason(code);
    let status = if comment.is_empty() {
        format!("000 {code:03}")
    } else {
        format!("000 {code:03} {comment}")
    };
    Head::request("REPORT", tid, to_path, vec![own.clone()])
        .with("Message-ID", message_id)
        .with(
            "Byte-Range",
            ByteRange {
                start: 1,
                end: Some(total),
                total: Some(total),
            }
            .to_string(),
        )
        .with("Status", status)
}

/// Requests sent and not yet answered, each with its deadline.
#[derive(Debug, Default)]
pub struct Outstanding {
    waiting: HashMap<String, (String, u64)>,
}

impl Outstanding {
    /// Remembers a request (by transaction id) for a message.
    pub fn sent(&mut self, tid: &str, message_id: &str, now: u64) {
        self.waiting.insert(
            tid.to_string(),
            (message_id.to_string(), now + RESPONSE_TIMEOUT_SECS),
        );
    }

    /// A response came: its message's id, when the transaction was ours.
    pub fn answered(&mut self, tid: &str) -> Option<String> {
        self.waiting.remove(tid).map(|(m, _)| m)
    }

    /// Transactions past their deadline (408), with their message ids.
    pub fn expired(&mut self, now: u64) -> Vec<(String, String)> {
        let due: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(t, _)| t.clone())
            .collect();
        due.into_iter()
            .filter_map(|t| self.waiting.remove(&t).map(|(m, _)| (t, m)))
            .collect()
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// None waiting.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// RFC 4975 §7.3: a request is for this session when the last URI of its
/// To-Path is the session's own URI; otherwise it is answered 481.
pub fn for_session(head: &Head, own: &MsrpUri) -> bool {
    head.to_path.last().is_some_and(|u| u.same_as(own))
}
