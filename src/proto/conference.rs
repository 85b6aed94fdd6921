//! The conference event package (RFC 4575): the `conference-info`
//! document a room's subscribers get — its subject, its URI, how many are
//! present, and each member with their nickname and role.

/// The MIME type of the document.
pub const CONTENT_TYPE: &str = "application/conference-info+xml";

/// The event package name.
pub const EVENT: &str = "conference";

/// One member as RFC 4575 §5.6 describes a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The member's URI (`sip:alice@example.com`, `xmpp:juliet@example.org`).
    pub entity: String,
    /// The nickname.
    pub display: String,
    /// The role (`moderator`, `participant`, `visitor`).
    pub role: String,
}

/// A room's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info<'a> {
    /// The room's URI.
    pub entity: &'a str,
    /// Grows by one with each document sent to a subscriber (§4.6).
    pub version: u32,
    /// The subject.
    pub subject: &'a str,
    /// Who is present.
    pub users: &'a [User],
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
}

/// The full document (§5, `state="full"`): each notification carries the
/// whole state, so a subscriber that missed one loses nothing.
pub fn document(info: &Info<'_>) -> String {
    let mut out = String::with_capacity(512 + info.users.len() * 200);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<conference-info xmlns=\"urn:ietf:params:xml:ns:conference-info\" entity=\"");
    escape(info.entity, &mut out);
    out.push_str(&format!(
        "\" state=\"full\" version=\"{}\">\n",
        info.version
    ));
    out.push_str(" <conference-description>\n  <subject>");
    escape(info.subject, &mut out);
    out.push_str("</subject>\n  <conf-uris>\n   <entry>\n    <uri>");
    escape(info.entity, &mut out);
    out.push_str("</uri>\n    <purpose>participation</purpose>\n   </entry>\n  </conf-uris>\n");
    out.push_str(" </conference-description>\n");
    out.push_str(&format!(
        " <conference-state>\n  <user-count>{}</user-count>\n  <active>true</active>\n </conference-state>\n",
        info.users.len()
    ));
    out.push_str(" <users>\n");
    for u in info.users {
        out.push_str("  <user entity=\"");
        escape(&u.entity, &mut out);
        out.push_str("\" state=\"full\">\n   <display-text>");
        escape(&u.display, &mut out);
        out.push_str("</display-text>\n   <roles>\n    <entry>");
        escape(&u.role, &mut out);
        out.push_str("</entry>\n   </roles>\n   <endpoint entity=\"");
        escape(&u.entity, &mut out);
        out.push_str("\">\n    <status>connected</status>\n   </endpoint>\n  </user>\n");
    }
    out.push_str(" </users>\n</conference-info>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_with_two_members() {
        let users = [
            User {
                entity: "sip:alice@example.com".into(),
                display: "alice".into(),
                role: "moderator".into(),
            },
            User {
                entity: "xmpp:juliet@example.org".into(),
                display: "J & R <3".into(),
                role: "participant".into(),
            },
        ];
        let doc = document(&Info {
            entity: "sip:dev@conference.example.com",
            version: 7,
            subject: "Plans \"now\"",
            users: &users,
        });
        assert!(
            doc.contains("entity=\"sip:dev@conference.example.com\" state=\"full\" version=\"7\"")
        );
        assert!(doc.contains("<user-count>2</user-count>"));
        assert!(doc.contains("<display-text>J &amp; R &lt;3</display-text>"));
        assert!(doc.contains("<subject>Plans &quot;now&quot;</subject>"));
        assert!(doc.contains("<user entity=\"xmpp:juliet@example.org\" state=\"full\">"));
    }

    #[test]
    fn control_characters_never_reach_the_document() {
        let users = [User {
            entity: "sip:a@b".into(),
            display: "a\u{1}b".into(),
            role: "participant".into(),
        }];
        let doc = document(&Info {
            entity: "sip:r@c",
            version: 1,
            subject: "",
            users: &users,
        });
        assert!(doc.contains("<display-text>ab</display-text>"));
    }
}
