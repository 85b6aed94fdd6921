//! A multiparty chat room as one protocol-independent state machine: members
//! with nicknames, roles and affiliations (the XEP-0045 set, the richest of
//! the room models), settings, and the events each network renders in its
//! own way. Also the command set of pager-mode rooms (`/join`, `/nick`, …)
//! for clients that only send MESSAGE. Time is passed in.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// A member's standing for this visit (XEP-0045 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Present, may not speak in a moderated room.
    Visitor,
    /// Present, may speak.
    Participant,
    /// May kick and change roles.
    Moderator,
}

/// A user's long-lived standing in the room (XEP-0045 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    /// Banned.
    Outcast,
    /// No standing.
    None,
    /// May enter a members-only room.
    Member,
    /// May ban and grant membership.
    Admin,
    /// Owns the room.
    Owner,
}

/// The room's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Listed in the room directory.
    pub public: bool,
    /// Only members (and above) may enter.
    pub members_only: bool,
    /// Kept when the last member leaves.
    pub persistent: bool,
    /// Only participants and moderators may speak.
    pub moderated: bool,
    /// Needed to enter, when set.
    pub password: Option<String>,
    /// Messages replayed to someone who joins.
    pub history: usize,
    /// Members present at most.
    pub max_members: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            public: true,
            members_only: false,
            persistent: false,
            moderated: false,
            password: None,
            history: 20,
            max_members: 200,
        }
    }
}

/// One member present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Who it is: a neutral address (`user@domain`).
    pub id: String,
    /// Its role for this visit.
    pub role: Role,
    /// Its affiliation.
    pub affiliation: Affiliation,
}

/// What happened in the room, for every network to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Someone entered.
    Joined {
        /// Their nickname.
        nick: String,
        /// Their role.
        role: Role,
        /// Their affiliation.
        affiliation: Affiliation,
    },
    /// Someone left.
    Left {
        /// Their nickname.
        nick: String,
    },
    /// Someone took another nickname.
    NickChanged {
        /// The old one.
        from: String,
        /// The new one.
        to: String,
    },
    /// The subject changed.
    Subject {
        /// Who set it.
        by: String,
        /// The new subject.
        text: String,
    },
    /// Someone was removed.
    Kicked {
        /// Their nickname.
        nick: String,
        /// The moderator.
        by: String,
        /// Why.
        reason: String,
    },
    /// Someone was banned.
    Banned {
        /// Their nickname.
        nick: String,
        /// The admin or owner.
        by: String,
        /// Why.
        reason: String,
    },
    /// Someone was removed because their link stopped taking what the
    /// room sends.
    Dropped {
        /// Their nickname.
        nick: String,
    },
    /// Someone's role changed.
    RoleChanged {
        /// Their nickname.
        nick: String,
        /// The new role.
        role: Role,
    },
    /// A message to everyone.
    Message {
        /// The speaker's nickname.
        from: String,
        /// What was said.
        text: String,
        /// When (seconds since the epoch).
        at: u64,
    },
    /// A message to one member only.
    Private {
        /// The speaker's nickname.
        from: String,
        /// The addressee's nickname.
        to: String,
        /// What was said.
        text: String,
    },
}

/// Why the room refused something; each maps to an XMPP condition and a
/// SIP status in the adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Banned (XMPP forbidden, SIP 403).
    #[error("you are banned from this room")]
    Banned,
    /// Members only (registration-required, 403).
    #[error("this room is for members only")]
    MembersOnly,
    /// A password is needed or was wrong (not-authorized, 401/403).
    #[error("this room needs the right password")]
    Password,
    /// The nickname is someone else's (conflict, 409 / 486).
    #[error("that nickname is taken")]
    NickTaken,
    /// The nickname is empty or too long.
    #[error("that is not a nickname")]
    BadNick,
    /// Full (service-unavailable, 503).
    #[error("the room is full")]
    Full,
    /// Not present in the room.
    #[error("you are not in this room")]
    NotPresent,
    /// No member by that nickname.
    #[error("no one here has that nickname")]
    NoSuchNick,
    /// The role or affiliation does not allow it (forbidden, 403).
    #[error("you may not do that here")]
    NotAllowed,
}

/// The longest nickname, in characters.
pub const MAX_NICK: usize = 64;

/// One room.
#[derive(Debug, Clone)]
pub struct Room {
    /// Its address (`dev@rooms.example.com`).
    pub address: String,
    /// Its subject.
    pub subject: String,
    /// Its settings.
    pub settings: Settings,
    /// Who is present, by nickname.
    pub members: BTreeMap<String, Member>,
    /// Long-lived standings, by member id.
    pub affiliations: HashMap<String, Affiliation>,
    /// The last messages, oldest first.
    pub history: VecDeque<Event>,
}

impl Room {
    /// A new room; `owner` made it.
    pub fn new(address: &str, owner: &str, settings: Settings) -> Room {
        let mut affiliations = HashMap::new();
        affiliations.insert(owner.to_ascii_lowercase(), Affiliation::Owner);
        Room {
            address: address.to_string(),
            subject: String::new(),
            settings,
            members: BTreeMap::new(),
            affiliations,
            history: VecDeque::new(),
        }
    }

    /// The affiliation of `id`.
    pub fn affiliation(&self, id: &str) -> Affiliation {
        self.affiliations
            .get(&id.to_ascii_lowercase())
            .copied()
            .unwrap_or(Affiliation::None)
    }

    /// The nickname `id` is present under.
    pub fn nick_of(&self, id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(_, m)| m.id.eq_ignore_ascii_case(id))
            .map(|(n, _)| n.as_str())
    }

    fn member_of(&self, id: &str) -> Result<(String, Member), Refusal> {
        self.members
            .iter()
            .find(|(_, m)| m.id.eq_ignore_ascii_case(id))
            .map(|(n, m)| (n.clone(), m.clone()))
            .ok_or(Refusal::NotPresent)
    }

    /// `id` enters as `nick` (XEP-0045 §7.2): the events for everyone,
    /// then the history for the newcomer is [`Room::history`].
    pub fn join(
        &mut self,
        id: &str,
        nick: &str,
        password: Option<&str>,
    ) -> Result<Vec<Event>, Refusal> {
        let nick = nick.trim();
        if nick.is_empty() || nick.chars().count() > MAX_NICK || nick.chars().any(char::is_control)
        {
            return Err(Refusal::BadNick);
        }
        let affiliation = self.affiliation(id);
        if affiliation == Affiliation::Outcast {
            return Err(Refusal::Banned);
        }
        if self.settings.members_only && affiliation < Affiliation::Member {
            return Err(Refusal::MembersOnly);
        }
        if let Some(p) = &self.settings.password {
            if affiliation < Affiliation::Admin && password != Some(p.as_str()) {
                return Err(Refusal::Password);
            }
        }
        if let Some(m) = self.members.get(nick) {
            if !m.id.eq_ignore_ascii_case(id) {
                return Err(Refusal::NickTaken);
            }
            return Ok(Vec::new());
        }
        if let Some(old) = self.nick_of(id).map(str::to_string) {
            // Already present under another nickname: a change of nickname.
            return self.change_nick(id, &old, nick);
        }
        if self.members.len() >= self.settings.max_members && affiliation < Affiliation::Admin {
            return Err(Refusal::Full);
        }
        let role = if affiliation >= Affiliation::Admin {
            Role::Moderator
        } else if self.settings.moderated && affiliation < Affiliation::Member {
            Role::Visitor
        } else {
            Role::Participant
        };
        self.members.insert(
            nick.to_string(),
            Member {
                id: id.to_string(),
                role,
                affiliation,
            },
        );
        Ok(vec![Event::Joined {
            nick: nick.to_string(),
            role,
            affiliation,
        }])
    }

    fn change_nick(&mut self, id: &str, old: &str, new: &str) -> Result<Vec<Event>, Refusal> {
        if self
            .members
            .get(new)
            .is_some_and(|m| !m.id.eq_ignore_ascii_case(id))
        {
            return Err(Refusal::NickTaken);
        }
        let m = self.members.remove(old).ok_or(Refusal::NotPresent)?;
        self.members.insert(new.to_string(), m);
        Ok(vec![Event::NickChanged {
            from: old.to_string(),
            to: new.to_string(),
        }])
    }

    /// `id` takes the nickname `nick`.
    pub fn nick(&mut self, id: &str, nick: &str) -> Result<Vec<Event>, Refusal> {
        let nick = nick.trim();
        if nick.is_empty() || nick.chars().count() > MAX_NICK || nick.chars().any(char::is_control)
        {
            return Err(Refusal::BadNick);
        }
        let (old, _) = self.member_of(id)?;
        if old == nick {
            return Ok(Vec::new());
        }
        self.change_nick(id, &old, nick)
    }

    /// `id` leaves.
    pub fn leave(&mut self, id: &str) -> Result<Vec<Event>, Refusal> {
        let (nick, _) = self.member_of(id)?;
        self.members.remove(&nick);
        Ok(vec![Event::Left { nick }])
    }

    /// `id` says `text` to everyone (visitors may not in a moderated room).
    pub fn say(&mut self, id: &str, text: &str, now: u64) -> Result<Vec<Event>, Refusal> {
        let (nick, m) = self.member_of(id)?;
        if m.role == Role::Visitor {
            return Err(Refusal::NotAllowed);
        }
        let e = Event::Message {
            from: nick,
            text: text.to_string(),
            at: now,
        };
        if self.settings.history > 0 {
            self.history.push_back(e.clone());
            while self.history.len() > self.settings.history {
                self.history.pop_front();
            }
        }
        Ok(vec![e])
    }

    /// `id` says `text` to the member called `to` alone.
    pub fn whisper(&self, id: &str, to: &str, text: &str) -> Result<Event, Refusal> {
        let (nick, _) = self.member_of(id)?;
        if !self.members.contains_key(to) {
            return Err(Refusal::NoSuchNick);
        }
        Ok(Event::Private {
            from: nick,
            to: to.to_string(),
            text: text.to_string(),
        })
    }

    /// `id` sets the subject (moderators only in a moderated room).
    pub fn set_subject(&mut self, id: &str, text: &str) -> Result<Vec<Event>, Refusal> {
        let (nick, m) = self.member_of(id)?;
        if m.role == Role::Visitor || (self.settings.moderated && m.role < Role::Moderator) {
            return Err(Refusal::NotAllowed);
        }
        self.subject = text.to_string();
        Ok(vec![Event::Subject {
            by: nick,
            text: text.to_string(),
        }])
    }

    /// A moderator removes `nick` (never someone of a higher affiliation,
    /// XEP-0045 §8.2).
    pub fn kick(&mut self, id: &str, nick: &str, reason: &str) -> Result<Vec<Event>, Refusal> {
        let (by, me) = self.member_of(id)?;
        let target = self.members.get(nick).ok_or(Refusal::NoSuchNick)?;
        if me.role < Role::Moderator
            || target.affiliation > me.affiliation
            || target.affiliation >= Affiliation::Admin && me.affiliation < Affiliation::Owner
        {
            return Err(Refusal::NotAllowed);
        }
        self.members.remove(nick);
        Ok(vec![Event::Kicked {
            nick: nick.to_string(),
            by,
            reason: reason.to_string(),
        }])
    }

    /// An admin or owner bans `nick` (XEP-0045 §9.1): outcast, and out.
    pub fn ban(&mut self, id: &str, nick: &str, reason: &str) -> Result<Vec<Event>, Refusal> {
        let (by, me) = self.member_of(id)?;
        let target = self.members.get(nick).cloned().ok_or(Refusal::NoSuchNick)?;
        if me.affiliation < Affiliation::Admin || target.affiliation >= me.affiliation {
            return Err(Refusal::NotAllowed);
        }
        self.affiliations
            .insert(target.id.to_ascii_lowercase(), Affiliation::Outcast);
        self.members.remove(nick);
        Ok(vec![Event::Banned {
            nick: nick.to_string(),
            by,
            reason: reason.to_string(),
        }])
    }

    /// A moderator gives `nick` a role (voice, devoice); only admins and
    /// owners make or unmake moderators.
    pub fn set_role(&mut self, id: &str, nick: &str, role: Role) -> Result<Vec<Event>, Refusal> {
        let (_, me) = self.member_of(id)?;
        let target = self.members.get(nick).cloned().ok_or(Refusal::NoSuchNick)?;
        let about_moderators = role == Role::Moderator || target.role == Role::Moderator;
        if me.role < Role::Moderator
            || (about_moderators && me.affiliation < Affiliation::Admin)
            || target.affiliation > me.affiliation
        {
            return Err(Refusal::NotAllowed);
        }
        if let Some(m) = self.members.get_mut(nick) {
            m.role = role;
        }
        Ok(vec![Event::RoleChanged {
            nick: nick.to_string(),
            role,
        }])
    }

    /// An owner (or admin, below its own rank) sets `target`'s affiliation.
    pub fn set_affiliation(
        &mut self,
        id: &str,
        target: &str,
        affiliation: Affiliation,
    ) -> Result<(), Refusal> {
        let mine = self.affiliation(id);
        let theirs = self.affiliation(target);
        if mine < Affiliation::Admin
            || (mine == Affiliation::Admin
                && (affiliation >= Affiliation::Admin || theirs >= Affiliation::Admin))
        {
            return Err(Refusal::NotAllowed);
        }
        self.affiliations
            .insert(target.to_ascii_lowercase(), affiliation);
        Ok(())
    }

    /// Nobody is present and the room is not persistent: it can go.
    pub fn is_done(&self) -> bool {
        self.members.is_empty() && !self.settings.persistent
    }
}

/// A command of a pager-mode room (a MESSAGE whose body starts with `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/join [nick] [password]`.
    Join {
        /// The nickname asked for.
        nick: Option<String>,
        /// The room's password.
        password: Option<String>,
    },
    /// `/leave`.
    Leave,
    /// `/nick NICK`.
    Nick(String),
    /// `/who`.
    Who,
    /// `/topic [TEXT]`: shows the subject, or sets it.
    Topic(Option<String>),
    /// `/msg NICK TEXT`.
    Msg {
        /// The addressee's nickname.
        to: String,
        /// What to say.
        text: String,
    },
    /// `/kick NICK [REASON]`.
    Kick {
        /// Whom.
        nick: String,
        /// Why.
        reason: String,
    },
    /// `/ban NICK [REASON]`: an admin or owner bans a member present.
    Ban {
        /// Whom.
        nick: String,
        /// Why.
        reason: String,
    },
    /// `/help`.
    Help,
    /// `/me TEXT`: an action, said to everyone.
    Me(String),
}

/// What `/help` answers.
pub const HELP: &str = "/join [nick] [password], /leave, /nick NICK, /who, /topic [TEXT], /msg NICK TEXT, /kick NICK [REASON], /ban NICK [REASON], /me TEXT, /help";

/// Reads a pager-mode command; `None` for an ordinary message (no leading
/// `/`, or `//` to send a line that starts with a slash); `Err` naming the
/// usage for a command used wrongly.
pub fn command(text: &str) -> Option<Result<Command, String>> {
    let text = text.trim_end_matches(['\r', '\n']);
    let rest = text.strip_prefix('/')?;
    if rest.starts_with('/') {
        return None;
    }
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    let mut parts = args.split_whitespace();
    let usage = |u: &str| Some(Err(format!("usage: {u}")));
    Some(Ok(match word.to_ascii_lowercase().as_str() {
        "join" => Command::Join {
            nick: parts.next().map(str::to_string),
            password: parts.next().map(str::to_string),
        },
        "leave" | "part" => Command::Leave,
        "nick" => match parts.next() {
            Some(n) => Command::Nick(n.to_string()),
            None => return usage("/nick NICK"),
        },
        "who" | "names" => Command::Who,
        "topic" => Command::Topic((!args.is_empty()).then(|| args.to_string())),
        "msg" => {
            let Some((to, text)) = args.split_once(char::is_whitespace) else {
                return usage("/msg NICK TEXT");
            };
            Command::Msg {
                to: to.to_string(),
                text: text.trim().to_string(),
            }
        }
        "kick" => match args.split_once(char::is_whitespace) {
            Some((n, r)) => Command::Kick {
                nick: n.to_string(),
                reason: r.trim().to_string(),
            },
            None if !args.is_empty() => Command::Kick {
                nick: args.to_string(),
                reason: String::new(),
            },
            None => return usage("/kick NICK [REASON]"),
        },
        "ban" => match args.split_once(char::is_whitespace) {
            Some((n, r)) => Command::Ban {
                nick: n.to_string(),
                reason: r.trim().to_string(),
            },
            None if !args.is_empty() => Command::Ban {
                nick: args.to_string(),
                reason: String::new(),
            },
            None => return usage("/ban NICK [REASON]"),
        },
        "help" => Command::Help,
        "me" => Command::Me(args.to_string()),
        other => return Some(Err(format!("unknown command /{other}; {HELP}"))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(settings: Settings) -> Room {
        Room::new("dev@rooms.example.com", "olive@example.com", settings)
    }

    #[test]
    fn the_owner_moderates_and_others_participate_under_unique_nicknames() {
        let mut r = room(Settings::default());
        let e = r.join("olive@example.com", "olive", None).unwrap();
        assert_eq!(
            e,
            vec![Event::Joined {
                nick: "olive".into(),
                role: Role::Moderator,
                affiliation: Affiliation::Owner
            }]
        );
        r.join("bob@example.com", "bob", None).unwrap();
        assert_eq!(r.members["bob"].role, Role::Participant);
        assert_eq!(
            r.join("eve@evil.test", "bob", None),
            Err(Refusal::NickTaken)
        );
        assert_eq!(r.join("eve@evil.test", "", None), Err(Refusal::BadNick));
        assert_eq!(
            r.join("eve@evil.test", &"x".repeat(65), None),
            Err(Refusal::BadNick)
        );
        // Joining again under another nickname is a nickname change.
        assert_eq!(
            r.join("bob@example.com", "robert", None).unwrap(),
            vec![Event::NickChanged {
                from: "bob".into(),
                to: "robert".into()
            }]
        );
        assert_eq!(r.nick("robert@nowhere", "x"), Err(Refusal::NotPresent));
        assert_eq!(r.nick("bob@example.com", "olive"), Err(Refusal::NickTaken));
        assert_eq!(
            r.leave("bob@example.com").unwrap(),
            vec![Event::Left {
                nick: "robert".into()
            }]
        );
        r.leave("olive@example.com").unwrap();
        assert!(r.is_done(), "a temporary room goes with its last member");
    }

    #[test]
    fn entry_rules_members_only_password_bans_and_the_limit() {
        let mut r = room(Settings {
            members_only: true,
            password: Some("s3cret".into()),
            max_members: 2,
            ..Settings::default()
        });
        r.join("olive@example.com", "olive", None).unwrap();
        assert_eq!(
            r.join("bob@example.com", "bob", Some("s3cret")),
            Err(Refusal::MembersOnly)
        );
        r.set_affiliation("olive@example.com", "bob@example.com", Affiliation::Member)
            .unwrap();
        assert_eq!(
            r.join("bob@example.com", "bob", None),
            Err(Refusal::Password)
        );
        r.join("bob@example.com", "bob", Some("s3cret")).unwrap();
        r.set_affiliation("olive@example.com", "carl@example.com", Affiliation::Member)
            .unwrap();
        assert_eq!(
            r.join("carl@example.com", "carl", Some("s3cret")),
            Err(Refusal::Full)
        );
        // A ban puts out and keeps out.
        assert!(matches!(
            r.ban("olive@example.com", "bob", "spam").unwrap()[0],
            Event::Banned { .. }
        ));
        assert_eq!(
            r.join("bob@example.com", "bob", Some("s3cret")),
            Err(Refusal::Banned)
        );
        // Members may not hand out standing.
        assert_eq!(
            r.set_affiliation("carl@example.com", "x@y", Affiliation::Member),
            Err(Refusal::NotAllowed)
        );
    }

    #[test]
    fn moderation_voice_subject_kick_and_history() {
        let mut r = room(Settings {
            moderated: true,
            history: 2,
            ..Settings::default()
        });
        r.join("olive@example.com", "olive", None).unwrap();
        r.join("vic@example.com", "vic", None).unwrap();
        assert_eq!(r.members["vic"].role, Role::Visitor);
        assert_eq!(
            r.say("vic@example.com", "hello?", 1),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            r.set_subject("vic@example.com", "mine"),
            Err(Refusal::NotAllowed)
        );
        r.set_role("olive@example.com", "vic", Role::Participant)
            .unwrap();
        r.say("vic@example.com", "one", 1).unwrap();
        r.say("vic@example.com", "two", 2).unwrap();
        r.say("olive@example.com", "three", 3).unwrap();
        assert_eq!(r.history.len(), 2, "history keeps the configured length");
        assert!(matches!(&r.history[0], Event::Message { text, .. } if text == "two"));
        // Participants may not kick, moderators may, owners are kept.
        assert_eq!(
            r.kick("vic@example.com", "olive", ""),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            r.set_role("vic@example.com", "olive", Role::Visitor),
            Err(Refusal::NotAllowed)
        );
        let p = r.whisper("olive@example.com", "vic", "psst").unwrap();
        assert_eq!(
            p,
            Event::Private {
                from: "olive".into(),
                to: "vic".into(),
                text: "psst".into()
            }
        );
        assert_eq!(
            r.whisper("olive@example.com", "nobody", "x"),
            Err(Refusal::NoSuchNick)
        );
        assert!(matches!(
            r.kick("olive@example.com", "vic", "enough").unwrap()[0],
            Event::Kicked { .. }
        ));
        assert!(!r.members.contains_key("vic"));
        r.set_subject("olive@example.com", "Releases").unwrap();
        assert_eq!(r.subject, "Releases");
    }

    #[test]
    fn pager_commands_are_read_with_their_usage() {
        assert_eq!(command("hello"), None);
        assert_eq!(command("//not a command"), None);
        assert_eq!(
            command("/join alice pw"),
            Some(Ok(Command::Join {
                nick: Some("alice".into()),
                password: Some("pw".into())
            }))
        );
        assert_eq!(
            command("/join"),
            Some(Ok(Command::Join {
                nick: None,
                password: None
            }))
        );
        assert_eq!(command("/leave\r\n"), Some(Ok(Command::Leave)));
        assert_eq!(command("/nick bob"), Some(Ok(Command::Nick("bob".into()))));
        assert!(command("/nick").unwrap().unwrap_err().contains("usage"));
        assert_eq!(command("/topic"), Some(Ok(Command::Topic(None))));
        assert_eq!(
            command("/topic Release 1.0 today"),
            Some(Ok(Command::Topic(Some("Release 1.0 today".into()))))
        );
        assert_eq!(
            command("/msg bob are you there?"),
            Some(Ok(Command::Msg {
                to: "bob".into(),
                text: "are you there?".into()
            }))
        );
        assert!(command("/msg bob")
            .unwrap()
            .unwrap_err()
            .contains("/msg NICK TEXT"));
        assert_eq!(
            command("/kick bob too loud"),
            Some(Ok(Command::Kick {
                nick: "bob".into(),
                reason: "too loud".into()
            }))
        );
        assert_eq!(
            command("/kick bob"),
            Some(Ok(Command::Kick {
                nick: "bob".into(),
                reason: String::new()
            }))
        );
        assert_eq!(command("/WHO"), Some(Ok(Command::Who)));
        assert_eq!(command("/me waves"), Some(Ok(Command::Me("waves".into()))));
        assert!(command("/dance").unwrap().unwrap_err().contains("/help"));
    }
}
