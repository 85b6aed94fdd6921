//! How a room's events look to each kind of member: structured notices for
//! the members of other networks (the adapter renders them, XEP-0045 for
//! XMPP), one line of text for pager-mode SIP members.

use parley_adapter::{Change, Occupant, RoomAffiliation, RoomEvent, RoomRole};

use crate::proto::room::{Affiliation, Event, Role};

/// The neutral role of a room role.
pub fn role(r: Role) -> RoomRole {
    match r {
        Role::Visitor => RoomRole::Visitor,
        Role::Participant => RoomRole::Participant,
        Role::Moderator => RoomRole::Moderator,
    }
}

/// The room role of a neutral role (`None` has none).
pub fn role_of(r: RoomRole) -> Option<Role> {
    match r {
        RoomRole::None => None,
        RoomRole::Visitor => Some(Role::Visitor),
        RoomRole::Participant => Some(Role::Participant),
        RoomRole::Moderator => Some(Role::Moderator),
    }
}

/// The neutral affiliation of a room affiliation.
pub fn affiliation(a: Affiliation) -> RoomAffiliation {
    match a {
        Affiliation::Outcast => RoomAffiliation::Outcast,
        Affiliation::None => RoomAffiliation::None,
        Affiliation::Member => RoomAffiliation::Member,
        Affiliation::Admin => RoomAffiliation::Admin,
        Affiliation::Owner => RoomAffiliation::Owner,
    }
}

/// The room affiliation of a neutral affiliation.
pub fn affiliation_of(a: RoomAffiliation) -> Affiliation {
    match a {
        RoomAffiliation::Outcast => Affiliation::Outcast,
        RoomAffiliation::None => Affiliation::None,
        RoomAffiliation::Member => Affiliation::Member,
        RoomAffiliation::Admin => Affiliation::Admin,
        RoomAffiliation::Owner => Affiliation::Owner,
    }
}

/// The name of a role as pager members read it.
pub fn role_name(r: Role) -> &'static str {
    role(r).name()
}

/// What one member learns of an event, given what the member needs to
/// render it: `occupant` looks up a present (or just departed) member's
/// standing by nickname, with their real address when the addressee may
/// see it.
pub fn notices(
    event: &Event,
    id: &str,
    own_nick: Option<&str>,
    occupant: &dyn Fn(&str) -> Occupant,
) -> Vec<RoomEvent> {
    let own = |nick: &str| own_nick == Some(nick);
    let gone = |nick: &str, change: Change| {
        let mut o = occupant(nick);
        o.role = RoomRole::None;
        RoomEvent::Occupant {
            own: own(nick),
            occupant: o,
            change,
            created: false,
        }
    };
    match event {
        Event::Joined { nick, .. } => vec![RoomEvent::Occupant {
            occupant: occupant(nick),
            change: Change::Present,
            own: own(nick),
            created: false,
        }],
        Event::Left { nick } => vec![gone(nick, Change::Left)],
        Event::Dropped { nick } => vec![gone(nick, Change::Dropped)],
        Event::NickChanged { from, to } => {
            // XEP-0045 §7.6: the old nickname leaves with 303 and the new
            // one, then the occupant is present under the new one.
            let mut old = occupant(to);
            old.nick = from.clone();
            old.role = RoomRole::None;
            vec![
                RoomEvent::Occupant {
                    occupant: old,
                    change: Change::Renamed(to.clone()),
                    own: own(to),
                    created: false,
                },
                RoomEvent::Occupant {
                    occupant: occupant(to),
                    change: Change::Present,
                    own: own(to),
                    created: false,
                },
            ]
        }
        Event::Subject { by, text } => vec![RoomEvent::Subject {
            nick: Some(by.clone()),
            text: text.clone(),
        }],
        Event::Kicked { nick, reason, .. } => vec![gone(nick, Change::Kicked(reason.clone()))],
        Event::Banned { nick, reason, .. } => {
            let mut e = gone(nick, Change::Banned(reason.clone()));
            if let RoomEvent::Occupant { occupant, .. } = &mut e {
                occupant.affiliation = RoomAffiliation::Outcast;
            }
            vec![e]
        }
        Event::RoleChanged { nick, .. } => vec![RoomEvent::Occupant {
            occupant: occupant(nick),
            change: Change::Standing,
            own: own(nick),
            created: false,
        }],
        Event::Message { from, text, .. } => vec![RoomEvent::Message {
            nick: from.clone(),
            id: id.to_string(),
            text: text.clone(),
            delay: None,
        }],
        Event::Private { from, text, .. } => vec![RoomEvent::Private {
            nick: from.clone(),
            id: id.to_string(),
            text: text.clone(),
        }],
    }
}

/// One line for a pager-mode member; `own_nick` is the addressee's.
pub fn line(event: &Event, own_nick: Option<&str>) -> String {
    let you = |nick: &str| own_nick == Some(nick);
    match event {
        Event::Joined { nick, .. } => format!("*** {nick} has joined"),
        Event::Left { nick } => format!("*** {nick} has left"),
        Event::Dropped { nick } => format!("*** {nick} was removed: not reachable"),
        Event::NickChanged { from, to } => format!("*** {from} is now known as {to}"),
        Event::Subject { by, text } => format!("*** {by} set the topic: {text}"),
        Event::Kicked { nick, by, reason } if you(nick) => {
            format!(
                "*** You were removed from the room by {by}{}",
                because(reason)
            )
        }
        Event::Kicked { nick, by, reason } => {
            format!("*** {nick} was removed by {by}{}", because(reason))
        }
        Event::Banned { nick, by, reason } if you(nick) => {
            format!(
                "*** You were banned from the room by {by}{}",
                because(reason)
            )
        }
        Event::Banned { nick, by, reason } => {
            format!("*** {nick} was banned by {by}{}", because(reason))
        }
        Event::RoleChanged { nick, role } => {
            format!("*** {nick} is now a {}", role_name(*role))
        }
        Event::Message { from, text, .. } => match text.strip_prefix("/me ") {
            Some(action) => format!("* {from} {action}"),
            None => format!("<{from}> {text}"),
        },
        Event::Private { from, text, .. } => format!("[private] <{from}> {text}"),
    }
}

fn because(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_lines_name_the_speaker_and_the_addressee() {
        let said = Event::Message {
            from: "bob".into(),
            text: "hi all".into(),
            at: 0,
        };
        assert_eq!(line(&said, None), "<bob> hi all");
        let me = Event::Message {
            from: "bob".into(),
            text: "/me waves".into(),
            at: 0,
        };
        assert_eq!(line(&me, None), "* bob waves");
        let kicked = Event::Kicked {
            nick: "eve".into(),
            by: "alice".into(),
            reason: "spam".into(),
        };
        assert_eq!(
            line(&kicked, Some("eve")),
            "*** You were removed from the room by alice: spam"
        );
        assert_eq!(
            line(&kicked, Some("bob")),
            "*** eve was removed by alice: spam"
        );
    }

    #[test]
    fn a_new_nickname_is_the_old_one_leaving_and_the_new_one_present() {
        let occupant = |nick: &str| Occupant {
            nick: nick.to_string(),
            role: RoomRole::Participant,
            affiliation: RoomAffiliation::None,
            real: None,
        };
        let e = Event::NickChanged {
            from: "bob".into(),
            to: "robert".into(),
        };
        let n = notices(&e, "", Some("robert"), &occupant);
        assert_eq!(n.len(), 2);
        match &n[0] {
            RoomEvent::Occupant {
                occupant,
                change: Change::Renamed(to),
                own: true,
                ..
            } => {
                assert_eq!(occupant.nick, "bob");
                assert_eq!(occupant.role, RoomRole::None);
                assert_eq!(to, "robert");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &n[1],
            RoomEvent::Occupant { occupant, change: Change::Present, .. } if occupant.nick == "robert"
        ));
    }

    #[test]
    fn roles_and_affiliations_map_both_ways() {
        for r in [Role::Visitor, Role::Participant, Role::Moderator] {
            assert_eq!(role_of(role(r)), Some(r));
        }
        assert_eq!(role_of(RoomRole::None), None);
        for a in [
            Affiliation::Outcast,
            Affiliation::None,
            Affiliation::Member,
            Affiliation::Admin,
            Affiliation::Owner,
        ] {
            assert_eq!(affiliation_of(affiliation(a)), a);
        }
    }
}
