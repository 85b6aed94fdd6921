//! Sans-IO mapping between XEP-0045 (Multi-User Chat) stanzas and the
//! neutral room model, for the rooms Parley hosts (RFC 7702): presence to
//! `room@service/nick` enters or renames, `unavailable` leaves, groupchat
//! messages speak or set the subject, private messages go to one
//! occupant, and the muc#admin items kick, ban and change roles and
//! affiliations. The other way: occupant presence with the muc#user
//! status codes, messages (history with XEP-0203 delays), subjects.

use parley_adapter::xml::Element;
use parley_adapter::{
    Address, Change, Condition, Failure, RoomAction, RoomAffiliation, RoomEvent, RoomInfo,
    RoomNotice, RoomRequest, RoomRole,
};

use crate::stanza::{Refused, NS_DELAY};

/// XEP-0045 entry.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
/// XEP-0045 occupant data.
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0045 moderation and administration.
pub const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
/// XEP-0045 room ownership.
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// XEP-0030 information.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030 items.
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0004 data forms.
pub const NS_DATA: &str = "jabber:x:data";

fn refused(condition: Condition, text: &str) -> Refused {
    Refused {
        failure: Failure::new(condition, text),
    }
}

fn jid(el: &Element, attr: &str) -> Result<Address, Refused> {
    let v = el
        .attr(attr)
        .ok_or_else(|| refused(Condition::JidMalformed, "missing address"))?;
    Address::from_jid(v).map_err(|e| refused(Condition::JidMalformed, &e.to_string()))
}

/// Reads a presence or message stanza sent to a room; `None` for one
/// with nothing to act on (a presence error, a chat state).
pub fn decode(el: &Element, ns: &str) -> Result<Option<RoomRequest>, Refused> {
    let from = jid(el, "from")?;
    let to = jid(el, "to")?;
    let room = to.bare();
    let nick = to.resource().map(str::to_string);
    let action = match el.name.as_str() {
        "presence" => match el.attr("type") {
            None => {
                let Some(nick) = nick.filter(|n| !n.trim().is_empty()) else {
                    // XEP-0045 §7.2.1: entry needs a nickname.
                    return Err(refused(Condition::JidMalformed, "a nickname is required"));
                };
                let x = el.child(NS_MUC, "x");
                RoomAction::Join {
                    nick,
                    password: x
                        .and_then(|x| x.child(NS_MUC, "password"))
                        .map(Element::text),
                    history: x
                        .and_then(|x| x.child(NS_MUC, "history"))
                        .and_then(|h| h.attr("maxstanzas"))
                        .and_then(|n| n.trim().parse().ok()),
                }
            }
            Some("unavailable") => RoomAction::Leave,
            _ => return Ok(None),
        },
        "message" => {
            let body = el.child(ns, "body").map(Element::text);
            match (el.attr("type").unwrap_or("normal"), nick) {
                ("error", _) => return Ok(None),
                ("groupchat", _) => match (el.child(ns, "subject"), body) {
                    (Some(subject), None) => RoomAction::Subject(subject.text()),
                    (_, Some(text)) => RoomAction::Say {
                        id: el.attr("id").unwrap_or_default().to_string(),
                        text,
                    },
                    (None, None) => return Ok(None),
                },
                ("chat" | "normal", Some(nick)) => match body {
                    Some(text) => RoomAction::Private {
                        nick,
                        id: el.attr("id").unwrap_or_default().to_string(),
                        text,
                    },
                    None => return Ok(None),
                },
                ("chat" | "normal", None) if body.is_none() => return Ok(None),
                _ => {
                    return Err(refused(
                        Condition::BadRequest,
                        "send groupchat messages to the room, private ones to room/nick",
                    ))
                }
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(RoomRequest { from, room, action }))
}

/// Reads a muc#admin `set` (XEP-0045 §8, §9): one item that changes a
/// role (by nickname) or an affiliation (by address).
pub fn decode_admin(iq: &Element) -> Result<RoomRequest, Refused> {
    let from = jid(iq, "from")?;
    let room = jid(iq, "to")?.bare();
    let item = iq
        .child(NS_MUC_ADMIN, "query")
        .and_then(|q| q.child(NS_MUC_ADMIN, "item"))
        .ok_or_else(|| refused(Condition::BadRequest, "one item is expected"))?;
    let reason = item
        .child(NS_MUC_ADMIN, "reason")
        .map(Element::text)
        .unwrap_or_default();
    let action = if let Some(role) = item.attr("role") {
        let role = RoomRole::from_name(role)
            .ok_or_else(|| refused(Condition::BadRequest, "unknown role"))?;
        let nick = item
            .attr("nick")
            .ok_or_else(|| refused(Condition::BadRequest, "a role change names a nickname"))?;
        RoomAction::SetRole {
            nick: nick.to_string(),
            role,
            reason,
        }
    } else if let Some(a) = item.attr("affiliation") {
        let affiliation = RoomAffiliation::from_name(a)
            .ok_or_else(|| refused(Condition::BadRequest, "unknown affiliation"))?;
        let member = jid(item, "jid")?.bare();
        RoomAction::SetAffiliation {
            member,
            affiliation,
            reason,
        }
    } else {
        return Err(refused(
            Condition::BadRequest,
            "an item needs a role or an affiliation",
        ));
    };
    Ok(RoomRequest { from, room, action })
}

/// The stanza that tells `notice.to` what happened in the room.
pub fn encode(notice: &RoomNotice, ns: &str) -> Element {
    let room = notice.room.to_bare_jid();
    let to = notice.to.to_jid();
    let occupant_jid = |nick: &str| format!("{room}/{nick}");
    match &notice.event {
        RoomEvent::Occupant {
            occupant,
            change,
            own,
            created,
        } => {
            let mut el = Element::new(ns, "presence")
                .with_attr("", "from", &occupant_jid(&occupant.nick))
                .with_attr("", "to", &to);
            if occupant.role == RoomRole::None {
                el = el.with_attr("", "type", "unavailable");
            }
            let mut item = Element::new(NS_MUC_USER, "item")
                .with_attr("", "affiliation", occupant.affiliation.name())
                .with_attr("", "role", occupant.role.name());
            if let Some(real) = &occupant.real {
                item = item.with_attr("", "jid", &real.to_jid());
            }
            let mut codes: Vec<&str> = Vec::new();
            match change {
                Change::Renamed(new) => {
                    item = item.with_attr("", "nick", new);
                    codes.push("303");
                }
                Change::Kicked(reason) | Change::Banned(reason) => {
                    if !reason.is_empty() {
                        item =
                            item.with_child(Element::new(NS_MUC_USER, "reason").with_text(reason));
                    }
                    codes.push(if matches!(change, Change::Kicked(_)) {
                        "307"
                    } else {
                        "301"
                    });
                }
                Change::Dropped => codes.push("333"),
                _ => {}
            }
            if *own {
                codes.push("110");
            }
            if *created {
                codes.push("201");
            }
            let mut x = Element::new(NS_MUC_USER, "x").with_child(item);
            for c in codes {
                x = x.with_child(Element::new(NS_MUC_USER, "status").with_attr("", "code", c));
            }
            el.with_child(x)
        }
        RoomEvent::Message {
            nick,
            id,
            text,
            delay,
        } => {
            let mut el = Element::new(ns, "message")
                .with_attr("", "type", "groupchat")
                .with_attr("", "from", &occupant_jid(nick))
                .with_attr("", "to", &to)
                .with_attr("", "id", id)
                .with_child(Element::new(ns, "body").with_text(text));
            if let Some(stamp) = delay {
                el = el.with_child(
                    Element::new(NS_DELAY, "delay")
                        .with_attr("", "from", &room)
                        .with_attr("", "stamp", stamp),
                );
            }
            el
        }
        RoomEvent::Private { nick, id, text } => Element::new(ns, "message")
            .with_attr("", "type", "chat")
            .with_attr("", "from", &occupant_jid(nick))
            .with_attr("", "to", &to)
            .with_attr("", "id", id)
            .with_child(Element::new(ns, "body").with_text(text))
            .with_child(Element::new(NS_MUC_USER, "x")),
        RoomEvent::Subject { nick, text } => {
            let from = nick.as_deref().map_or(room.clone(), occupant_jid);
            Element::new(ns, "message")
                .with_attr("", "type", "groupchat")
                .with_attr("", "from", &from)
                .with_attr("", "to", &to)
                .with_child(Element::new(ns, "subject").with_text(text))
        }
        RoomEvent::Notice(text) => Element::new(ns, "message")
            .with_attr("", "type", "groupchat")
            .with_attr("", "from", &room)
            .with_attr("", "to", &to)
            .with_child(Element::new(ns, "body").with_text(text)),
        RoomEvent::Refused(failure) => {
            let original = Element::new(ns, "message")
                .with_attr("", "from", &to)
                .with_attr("", "to", &room);
            crate::stanza::error_reply(&original, failure)
        }
        _ => Element::new(ns, "message")
            .with_attr("", "from", &room)
            .with_attr("", "to", &to),
    }
}

/// Whether a stanza for one of Parley's users comes from a room of
/// another server (XEP-0045 traffic Parley's occupants receive).
pub fn is_room_traffic(el: &Element, ns: &str) -> bool {
    match el.name.as_str() {
        "presence" => {
            el.child(NS_MUC_USER, "x").is_some()
                || (el.attr("type") == Some("error") && el.child(NS_MUC, "x").is_some())
        }
        "message" => {
            el.attr("type") == Some("groupchat")
                || (el.child(NS_MUC_USER, "x").is_some() && el.child(ns, "body").is_some())
        }
        _ => false,
    }
}

/// Reads what a room of another server tells one of Parley's users
/// (the inverse of [`encode`]).
pub fn decode_notice(el: &Element, ns: &str) -> Result<Option<RoomNotice>, Refused> {
    let from = jid(el, "from")?;
    let to = jid(el, "to")?;
    let room = from.bare();
    let nick = from.resource().map(str::to_string);
    let event = match el.name.as_str() {
        "presence" if el.attr("type") == Some("error") => {
            RoomEvent::Refused(crate::stanza::read_error(el))
        }
        "presence" => {
            let Some(nick) = nick else {
                return Ok(None);
            };
            let x = el.child(NS_MUC_USER, "x");
            let item = x.and_then(|x| x.child(NS_MUC_USER, "item"));
            let codes: Vec<String> = x
                .map(|x| {
                    x.elements()
                        .filter(|c| c.is(NS_MUC_USER, "status"))
                        .filter_map(|c| c.attr("code").map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let has = |c: &str| codes.iter().any(|x| x == c);
            let unavailable = el.attr("type") == Some("unavailable");
            let reason = item
                .and_then(|i| i.child(NS_MUC_USER, "reason"))
                .map(Element::text)
                .unwrap_or_default();
            let change = if !unavailable {
                Change::Present
            } else if has("303") {
                Change::Renamed(
                    item.and_then(|i| i.attr("nick"))
                        .unwrap_or_default()
                        .to_string(),
                )
            } else if has("307") {
                Change::Kicked(reason)
            } else if has("301") {
                Change::Banned(reason)
            } else if has("333") {
                Change::Dropped
            } else {
                Change::Left
            };
            RoomEvent::Occupant {
                occupant: parley_adapter::Occupant {
                    nick,
                    role: if unavailable {
                        RoomRole::None
                    } else {
                        item.and_then(|i| i.attr("role"))
                            .and_then(RoomRole::from_name)
                            .unwrap_or(RoomRole::Participant)
                    },
                    affiliation: item
                        .and_then(|i| i.attr("affiliation"))
                        .and_then(RoomAffiliation::from_name)
                        .unwrap_or(RoomAffiliation::None),
                    real: item
                        .and_then(|i| i.attr("jid"))
                        .and_then(|j| Address::from_jid(j).ok()),
                },
                change,
                own: has("110"),
                created: has("201"),
            }
        }
        "message" if el.attr("type") == Some("error") => {
            RoomEvent::Refused(crate::stanza::read_error(el))
        }
        "message" => {
            let body = el.child(ns, "body").map(Element::text);
            let id = el.attr("id").unwrap_or_default().to_string();
            match (el.attr("type"), body, el.child(ns, "subject")) {
                (Some("groupchat"), None, Some(subject)) => RoomEvent::Subject {
                    nick,
                    text: subject.text(),
                },
                (Some("groupchat"), Some(text), _) => match nick {
                    Some(nick) => RoomEvent::Message {
                        nick,
                        id,
                        text,
                        delay: el
                            .child(NS_DELAY, "delay")
                            .and_then(|d| d.attr("stamp"))
                            .map(str::to_string),
                    },
                    None => RoomEvent::Notice(text),
                },
                (_, Some(text), _) => match nick {
                    Some(nick) => RoomEvent::Private { nick, id, text },
                    None => RoomEvent::Notice(text),
                },
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(RoomNotice { room, to, event }))
}

/// The stanza for what one of Parley's users asks of a room of another
/// server; `request.room` carries the nickname as its resource.
pub fn encode_request(request: &RoomRequest, ns: &str) -> Element {
    let from = request.from.to_jid();
    let room = request.room.to_bare_jid();
    let occupant = |nick: &str| format!("{room}/{nick}");
    let own = request.room.resource().unwrap_or_default().to_string();
    let base = |name: &str, to: &str| {
        Element::new(ns, name)
            .with_attr("", "from", &from)
            .with_attr("", "to", to)
    };
    match &request.action {
        RoomAction::Join {
            nick,
            password,
            history,
        } => {
            let mut x = Element::new(NS_MUC, "x");
            if let Some(p) = password {
                x = x.with_child(Element::new(NS_MUC, "password").with_text(p));
            }
            if let Some(n) = history {
                x = x.with_child(Element::new(NS_MUC, "history").with_attr(
                    "",
                    "maxstanzas",
                    &n.to_string(),
                ));
            }
            base("presence", &occupant(nick)).with_child(x)
        }
        RoomAction::Leave => base("presence", &occupant(&own)).with_attr("", "type", "unavailable"),
        RoomAction::Say { id, text } => base("message", &room)
            .with_attr("", "type", "groupchat")
            .with_attr("", "id", id)
            .with_child(Element::new(ns, "body").with_text(text)),
        RoomAction::Private { nick, id, text } => base("message", &occupant(nick))
            .with_attr("", "type", "chat")
            .with_attr("", "id", id)
            .with_child(Element::new(ns, "body").with_text(text))
            .with_child(Element::new(NS_MUC_USER, "x")),
        RoomAction::Subject(text) => base("message", &room)
            .with_attr("", "type", "groupchat")
            .with_child(Element::new(ns, "subject").with_text(text)),
        RoomAction::SetRole { nick, role, reason } => base("iq", &room)
            .with_attr("", "type", "set")
            .with_attr("", "id", &format!("r{}", nick.len()))
            .with_child(
                Element::new(NS_MUC_ADMIN, "query").with_child(
                    Element::new(NS_MUC_ADMIN, "item")
                        .with_attr("", "nick", nick)
                        .with_attr("", "role", role.name())
                        .with_child(Element::new(NS_MUC_ADMIN, "reason").with_text(reason)),
                ),
            ),
        RoomAction::SetAffiliation {
            member,
            affiliation,
            reason,
        } => base("iq", &room)
            .with_attr("", "type", "set")
            .with_attr("", "id", "a1")
            .with_child(
                Element::new(NS_MUC_ADMIN, "query").with_child(
                    Element::new(NS_MUC_ADMIN, "item")
                        .with_attr("", "jid", &member.to_bare_jid())
                        .with_attr("", "affiliation", affiliation.name())
                        .with_child(Element::new(NS_MUC_ADMIN, "reason").with_text(reason)),
                ),
            ),
        _ => base("message", &room),
    }
}

/// The disco#info of the service (`room` none) or of one room.
pub fn disco_info(room: Option<&RoomInfo>) -> Element {
    let mut q = Element::new(NS_DISCO_INFO, "query");
    let (name, features): (String, Vec<&str>) = match room {
        None => (
            "Chat rooms".into(),
            vec![NS_MUC, NS_DISCO_INFO, NS_DISCO_ITEMS],
        ),
        Some(r) => (
            if r.subject.is_empty() {
                r.address.user().to_string()
            } else {
                r.subject.clone()
            },
            vec![
                NS_MUC,
                NS_DISCO_INFO,
                if r.public { "muc_public" } else { "muc_hidden" },
                if r.members_only {
                    "muc_membersonly"
                } else {
                    "muc_open"
                },
                if r.persistent {
                    "muc_persistent"
                } else {
                    "muc_temporary"
                },
                if r.moderated {
                    "muc_moderated"
                } else {
                    "muc_unmoderated"
                },
                if r.password {
                    "muc_passwordprotected"
                } else {
                    "muc_unsecured"
                },
                "muc_semianonymous",
            ],
        ),
    };
    q = q.with_child(
        Element::new(NS_DISCO_INFO, "identity")
            .with_attr("", "category", "conference")
            .with_attr("", "type", "text")
            .with_attr("", "name", &name),
    );
    for f in features {
        q = q.with_child(Element::new(NS_DISCO_INFO, "feature").with_attr("", "var", f));
    }
    q
}

/// The disco#items of the service: its public rooms.
pub fn disco_items(rooms: &[RoomInfo]) -> Element {
    let mut q = Element::new(NS_DISCO_ITEMS, "query");
    for r in rooms {
        let name = if r.subject.is_empty() {
            r.address.user().to_string()
        } else {
            r.subject.clone()
        };
        q = q.with_child(
            Element::new(NS_DISCO_ITEMS, "item")
                .with_attr("", "jid", &r.address.to_bare_jid())
                .with_attr("", "name", &name),
        );
    }
    q
}

/// The muc#owner answer to a configuration request: Parley's rooms are
/// created open (instant rooms, XEP-0045 §10.1.2) and configured by the
/// operator, so the form has only its type.
pub fn owner_form() -> Element {
    Element::new(NS_MUC_OWNER, "query").with_child(
        Element::new(NS_DATA, "x")
            .with_attr("", "type", "form")
            .with_child(
                Element::new(NS_DATA, "field")
                    .with_attr("", "var", "FORM_TYPE")
                    .with_attr("", "type", "hidden")
                    .with_child(
                        Element::new(NS_DATA, "value")
                            .with_text("http://jabber.org/protocol/muc#roomconfig"),
                    ),
            ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::tests::{stanza, write, NS};
    use parley_adapter::Occupant;

    #[test]
    fn entry_with_password_and_history_xep_0045_examples() {
        // XEP-0045 Examples 27 and 37 together.
        let el = stanza(
            "<presence from='hag66@shakespeare.lit/pda' id='djn4714' \
             to='coven@chat.shakespeare.lit/thirdwitch'>\
             <x xmlns='http://jabber.org/protocol/muc'>\
             <history maxstanzas='20'/><password>cauldronburn</password></x></presence>",
        );
        let r = decode(&el, NS).unwrap().unwrap();
        assert_eq!(r.room.to_bare_jid(), "coven@chat.shakespeare.lit");
        assert_eq!(r.from.to_jid(), "hag66@shakespeare.lit/pda");
        assert_eq!(
            r.action,
            RoomAction::Join {
                nick: "thirdwitch".into(),
                password: Some("cauldronburn".into()),
                history: Some(20),
            }
        );
        let leave = stanza(
            "<presence from='hag66@shakespeare.lit/pda' to='coven@chat.shakespeare.lit/thirdwitch' type='unavailable'/>",
        );
        assert_eq!(
            decode(&leave, NS).unwrap().unwrap().action,
            RoomAction::Leave
        );
        let no_nick =
            stanza("<presence from='hag66@shakespeare.lit/pda' to='coven@chat.shakespeare.lit'/>");
        assert_eq!(
            decode(&no_nick, NS).unwrap_err().failure.condition,
            Condition::JidMalformed
        );
    }

    #[test]
    fn groupchat_private_and_subject() {
        let say = stanza(
            "<message from='hag66@shakespeare.lit/pda' id='hysf1v37' \
             to='coven@chat.shakespeare.lit' type='groupchat'>\
             <body>Harpier cries: &apos;tis time, &apos;tis time.</body></message>",
        );
        assert_eq!(
            decode(&say, NS).unwrap().unwrap().action,
            RoomAction::Say {
                id: "hysf1v37".into(),
                text: "Harpier cries: 'tis time, 'tis time.".into()
            }
        );
        let private = stanza(
            "<message from='wiccarocks@shakespeare.lit/laptop' id='hgn27af1' \
             to='coven@chat.shakespeare.lit/firstwitch' type='chat'>\
             <body>I&apos;ll give thee a wind.</body></message>",
        );
        assert!(matches!(
            decode(&private, NS).unwrap().unwrap().action,
            RoomAction::Private { nick, .. } if nick == "firstwitch"
        ));
        let subject = stanza(
            "<message from='wiccarocks@shakespeare.lit/laptop' id='lh2bs617' \
             to='coven@chat.shakespeare.lit' type='groupchat'>\
             <subject>Fire Burn and Cauldron Bubble!</subject></message>",
        );
        assert_eq!(
            decode(&subject, NS).unwrap().unwrap().action,
            RoomAction::Subject("Fire Burn and Cauldron Bubble!".into())
        );
        let typing = stanza(
            "<message from='a@b/c' to='coven@chat.shakespeare.lit' type='groupchat'>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        );
        assert_eq!(decode(&typing, NS).unwrap(), None);
    }

    #[test]
    fn kick_and_ban_items() {
        // XEP-0045 Examples 89 and 111.
        let kick = stanza(
            "<iq from='fluellen@shakespeare.lit/pda' id='kick1' \
             to='harfleur@chat.shakespeare.lit' type='set'>\
             <query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item nick='pistol' role='none'><reason>Avaunt, you cullion!</reason></item>\
             </query></iq>",
        );
        assert_eq!(
            decode_admin(&kick).unwrap().action,
            RoomAction::SetRole {
                nick: "pistol".into(),
                role: RoomRole::None,
                reason: "Avaunt, you cullion!".into()
            }
        );
        let ban = stanza(
            "<iq from='kinghenryv@shakespeare.lit/throne' id='ban1' \
             to='southampton@chat.shakespeare.lit' type='set'>\
             <query xmlns='http://jabber.org/protocol/muc#admin'>\
             <item affiliation='outcast' jid='earlofcambridge@shakespeare.lit'>\
             <reason>Treason</reason></item></query></iq>",
        );
        assert!(matches!(
            decode_admin(&ban).unwrap().action,
            RoomAction::SetAffiliation { affiliation: RoomAffiliation::Outcast, member, .. }
                if member.to_bare_jid() == "earlofcambridge@shakespeare.lit"
        ));
    }

    #[test]
    fn what_parley_sends_as_a_room_it_reads_as_an_occupant() {
        // Every notice `encode` makes, `decode_notice` reads back the same.
        let room = Address::from_jid("coven@chat.shakespeare.lit").unwrap();
        let to = Address::from_jid("hag66@shakespeare.lit/pda").unwrap();
        let events = [
            RoomEvent::Occupant {
                occupant: Occupant {
                    nick: "thirdwitch".into(),
                    role: RoomRole::Participant,
                    affiliation: RoomAffiliation::Member,
                    real: None,
                },
                change: Change::Present,
                own: true,
                created: false,
            },
            RoomEvent::Occupant {
                occupant: Occupant {
                    nick: "oldhag".into(),
                    role: RoomRole::None,
                    affiliation: RoomAffiliation::None,
                    real: None,
                },
                change: Change::Renamed("wiccarocks".into()),
                own: false,
                created: false,
            },
            RoomEvent::Occupant {
                occupant: Occupant {
                    nick: "pistol".into(),
                    role: RoomRole::None,
                    affiliation: RoomAffiliation::None,
                    real: None,
                },
                change: Change::Kicked("Avaunt".into()),
                own: false,
                created: false,
            },
            RoomEvent::Message {
                nick: "firstwitch".into(),
                id: "m1".into(),
                text: "Thrice".into(),
                delay: Some("2002-10-13T23:58:37Z".into()),
            },
            RoomEvent::Private {
                nick: "firstwitch".into(),
                id: "p1".into(),
                text: "psst".into(),
            },
            RoomEvent::Subject {
                nick: Some("secondwitch".into()),
                text: "Fire Burn".into(),
            },
        ];
        for event in events {
            let notice = RoomNotice {
                room: room.clone(),
                to: to.clone(),
                event,
            };
            let el = encode(&notice, NS);
            assert!(is_room_traffic(&el, NS), "{}", write(&el));
            assert_eq!(decode_notice(&el, NS).unwrap(), Some(notice));
        }
    }

    #[test]
    fn requests_of_a_remote_room_are_xep_0045_stanzas() {
        let request = |action| RoomRequest {
            from: Address::from_jid("alice@sip.example.com/parley").unwrap(),
            room: Address::from_jid("dev@muc.example.org/alice").unwrap(),
            action,
        };
        let join = write(&encode_request(
            &request(RoomAction::Join {
                nick: "alice".into(),
                password: None,
                history: Some(0),
            }),
            NS,
        ));
        assert!(join.contains("to=\"dev@muc.example.org/alice\""), "{join}");
        assert!(join.contains("maxstanzas=\"0\""), "{join}");
        let leave = write(&encode_request(&request(RoomAction::Leave), NS));
        assert!(leave.contains("type=\"unavailable\""), "{leave}");
        assert!(
            leave.contains("to=\"dev@muc.example.org/alice\""),
            "{leave}"
        );
        // A message to the room reads back as one: the room's side of
        // Parley takes what Parley's occupant side sends.
        let say = encode_request(
            &request(RoomAction::Say {
                id: "s1".into(),
                text: "hello".into(),
            }),
            NS,
        );
        let back = decode(&say, NS).unwrap().unwrap();
        assert_eq!(
            back.action,
            RoomAction::Say {
                id: "s1".into(),
                text: "hello".into()
            }
        );
    }

    #[test]
    fn occupant_presence_carries_the_status_codes() {
        let notice = RoomNotice {
            room: Address::from_jid("coven@chat.shakespeare.lit").unwrap(),
            to: Address::from_jid("hag66@shakespeare.lit/pda").unwrap(),
            event: RoomEvent::Occupant {
                occupant: Occupant {
                    nick: "thirdwitch".into(),
                    role: RoomRole::Moderator,
                    affiliation: RoomAffiliation::Owner,
                    real: Some(Address::from_jid("hag66@shakespeare.lit").unwrap()),
                },
                change: Change::Present,
                own: true,
                created: true,
            },
        };
        let out = write(&encode(&notice, NS));
        assert!(
            out.contains("from=\"coven@chat.shakespeare.lit/thirdwitch\""),
            "{out}"
        );
        assert!(out.contains("affiliation=\"owner\""), "{out}");
        assert!(out.contains("role=\"moderator\""), "{out}");
        assert!(out.contains("code=\"110\""), "{out}");
        assert!(out.contains("code=\"201\""), "{out}");
        let renamed = RoomNotice {
            event: RoomEvent::Occupant {
                occupant: Occupant {
                    nick: "oldhag".into(),
                    role: RoomRole::None,
                    affiliation: RoomAffiliation::Member,
                    real: None,
                },
                change: Change::Renamed("wiccarocks".into()),
                own: false,
                created: false,
            },
            ..notice.clone()
        };
        let out = write(&encode(&renamed, NS));
        assert!(out.contains("type=\"unavailable\""), "{out}");
        assert!(out.contains("nick=\"wiccarocks\""), "{out}");
        assert!(out.contains("code=\"303\""), "{out}");
        // What Parley sends, Parley reads: the history message with its delay.
        let history = RoomNotice {
            event: RoomEvent::Message {
                nick: "firstwitch".into(),
                id: "h1".into(),
                text: "Thrice the brinded cat hath mew'd.".into(),
                delay: Some("2002-10-13T23:58:37Z".into()),
            },
            ..notice
        };
        let el = encode(&history, NS);
        let back = crate::stanza::decode(&el, NS).unwrap();
        match back {
            crate::stanza::Decoded::Message(m) => {
                assert_eq!(m.body_text(), Some("Thrice the brinded cat hath mew'd."));
                assert_eq!(m.timestamp.as_deref(), Some("2002-10-13T23:58:37Z"));
            }
            other => panic!("{other:?}"),
        }
    }
}
