# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_parley_global_optspecs
    string join \n config= h/help V/version
end

function __fish_parley_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_parley_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_parley_using_subcommand
    set -l cmd (__fish_parley_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c parley -n "__fish_parley_needs_command" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_needs_command" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_needs_command" -s V -l version -d 'Print version'
complete -c parley -n "__fish_parley_needs_command" -f -a "run" -d 'Run the server'
complete -c parley -n "__fish_parley_needs_command" -f -a "status" -d 'Print the live state of a running Parley through its admin API'
complete -c parley -n "__fish_parley_needs_command" -f -a "check-config" -d 'Check a configuration as `parley run` would (the TOML, every value, the files it names, the listeners) and print what it would listen on'
complete -c parley -n "__fish_parley_needs_command" -f -a "user" -d 'Provision users of the local domains (stored as digest HA1 values)'
complete -c parley -n "__fish_parley_needs_command" -f -a "sip" -d 'SIP message tools'
complete -c parley -n "__fish_parley_needs_command" -f -a "presence" -d 'Who may watch whom: presence authorization rules. A running server applies a change within a second'
complete -c parley -n "__fish_parley_needs_command" -f -a "archive" -d 'The compliance archive'
complete -c parley -n "__fish_parley_needs_command" -f -a "room" -d 'The chat rooms of the conference domain, through the admin API of a running Parley'
complete -c parley -n "__fish_parley_needs_command" -f -a "registrations" -d 'The bindings of a running Parley (all, or one user\'s), through its admin API; `registrations remove USER [CONTACT]` ends them'
complete -c parley -n "__fish_parley_needs_command" -f -a "log-level" -d 'Show the log filter of a running Parley, or change it at once (`debug`, `info,parley=debug` …) until the next reload or restart'
complete -c parley -n "__fish_parley_needs_command" -f -a "reload" -d 'Make a running Parley read its configuration file again (as SIGHUP does) and say what changed and what needs a restart'
complete -c parley -n "__fish_parley_needs_command" -f -a "backup" -d 'Copy the database to FILE, consistently, while Parley runs (SQLite `VACUUM INTO`)'
complete -c parley -n "__fish_parley_needs_command" -f -a "store" -d 'The store: move a node\'s data into a cluster\'s database'
complete -c parley -n "__fish_parley_needs_command" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c parley -n "__fish_parley_needs_command" -f -a "man" -d 'Print the manual page (roff; `parley man | man -l -`), or write it and one page per subcommand (parley-run.1 …) into a directory'
complete -c parley -n "__fish_parley_needs_command" -f -a "pidf" -d 'Presence document (PIDF) tools'
complete -c parley -n "__fish_parley_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand run" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand run" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand status" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand status" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand check-config" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand user; and not __fish_seen_subcommand_from add list remove help" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand user; and not __fish_seen_subcommand_from add list remove help" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand user; and not __fish_seen_subcommand_from add list remove help" -f -a "add" -d 'Add a user, or set a new password for one'
complete -c parley -n "__fish_parley_using_subcommand user; and not __fish_seen_subcommand_from add list remove help" -f -a "list" -d 'List the users'
complete -c parley -n "__fish_parley_using_subcommand user; and not __fish_seen_subcommand_from add list remove help" -f -a "remove" -d 'Remove a user'
complete -c parley -n "__fish_parley_using_subcommand user; and not __fish_seen_subcommand_from add list remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from add" -l password -d 'The password. Without it: asked twice on a terminal with echo off, or one line read from a pipe. Only its HA1 values are kept' -r
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from add" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from list" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from remove" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a user, or set a new password for one'
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the users'
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a user'
complete -c parley -n "__fish_parley_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand sip; and not __fish_seen_subcommand_from parse help" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand sip; and not __fish_seen_subcommand_from parse help" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand sip; and not __fish_seen_subcommand_from parse help" -f -a "parse" -d 'Parse a SIP message; print it as Parley would forward it, or say why it is refused'
complete -c parley -n "__fish_parley_using_subcommand sip; and not __fish_seen_subcommand_from parse help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand sip; and __fish_seen_subcommand_from parse" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand sip; and __fish_seen_subcommand_from parse" -l stream -d 'Treat the input as received on TCP/TLS, where Content-Length is mandatory'
complete -c parley -n "__fish_parley_using_subcommand sip; and __fish_seen_subcommand_from parse" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand sip; and __fish_seen_subcommand_from help" -f -a "parse" -d 'Parse a SIP message; print it as Parley would forward it, or say why it is refused'
complete -c parley -n "__fish_parley_using_subcommand sip; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand presence; and not __fish_seen_subcommand_from allow deny block forget rules help" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand presence; and not __fish_seen_subcommand_from allow deny block forget rules help" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand presence; and not __fish_seen_subcommand_from allow deny block forget rules help" -f -a "allow" -d 'Let WATCHER see PRESENTITY (approves a pending watcher)'
complete -c parley -n "__fish_parley_using_subcommand presence; and not __fish_seen_subcommand_from allow deny block forget rules help" -f -a "deny" -d 'Refuse WATCHER: its subscriptions end and new ones get 403'
complete -c parley -n "__fish_parley_using_subcommand presence; and not __fish_seen_subcommand_from allow deny block forget rules help" -f -a "block" -d 'Accept WATCHER but show it only "closed" (polite blocking)'
complete -c parley -n "__fish_parley_using_subcommand presence; and not __fish_seen_subcommand_from allow deny block forget rules help" -f -a "forget" -d 'Remove the rule: the default policy applies again'
complete -c parley -n "__fish_parley_using_subcommand presence; and not __fish_seen_subcommand_from allow deny block forget rules help" -f -a "rules" -d 'List the rules'
complete -c parley -n "__fish_parley_using_subcommand presence; and not __fish_seen_subcommand_from allow deny block forget rules help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from allow" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from allow" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from deny" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from deny" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from block" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from block" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from forget" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from forget" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from rules" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from rules" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from help" -f -a "allow" -d 'Let WATCHER see PRESENTITY (approves a pending watcher)'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from help" -f -a "deny" -d 'Refuse WATCHER: its subscriptions end and new ones get 403'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from help" -f -a "block" -d 'Accept WATCHER but show it only "closed" (polite blocking)'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from help" -f -a "forget" -d 'Remove the rule: the default policy applies again'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from help" -f -a "rules" -d 'List the rules'
complete -c parley -n "__fish_parley_using_subcommand presence; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand archive; and not __fish_seen_subcommand_from search help" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand archive; and not __fish_seen_subcommand_from search help" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand archive; and not __fish_seen_subcommand_from search help" -f -a "search" -d 'Archived messages, newest first, matching every condition given'
complete -c parley -n "__fish_parley_using_subcommand archive; and not __fish_seen_subcommand_from search help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from search" -l address -d 'Sender or recipient, user@domain' -r
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from search" -l domain -d 'Peer, sender or recipient domain' -r
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from search" -l since -d 'From this time on (Unix seconds or RFC 3339, UTC)' -r
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from search" -l until -d 'Before this time (Unix seconds or RFC 3339, UTC)' -r
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from search" -l limit -d 'At most this many' -r
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from search" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from search" -l full -d 'Print each message\'s CPIM too'
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from search" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from help" -f -a "search" -d 'Archived messages, newest first, matching every condition given'
complete -c parley -n "__fish_parley_using_subcommand archive; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand room; and not __fish_seen_subcommand_from list create set close kick help" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand room; and not __fish_seen_subcommand_from list create set close kick help" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand room; and not __fish_seen_subcommand_from list create set close kick help" -f -a "list" -d 'The rooms, with who is in them'
complete -c parley -n "__fish_parley_using_subcommand room; and not __fish_seen_subcommand_from list create set close kick help" -f -a "create" -d 'Make a room (its name, or its full address)'
complete -c parley -n "__fish_parley_using_subcommand room; and not __fish_seen_subcommand_from list create set close kick help" -f -a "set" -d 'Change a room\'s settings or subject'
complete -c parley -n "__fish_parley_using_subcommand room; and not __fish_seen_subcommand_from list create set close kick help" -f -a "close" -d 'Close a room: everyone in it is told and removed'
complete -c parley -n "__fish_parley_using_subcommand room; and not __fish_seen_subcommand_from list create set close kick help" -f -a "kick" -d 'Remove a member from a room'
complete -c parley -n "__fish_parley_using_subcommand room; and not __fish_seen_subcommand_from list create set close kick help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from list" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l subject -d 'The subject' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l public -d 'Listed in the directory' -r -f -a "true\t''
false\t''"
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l members-only -d 'Only members may enter' -r -f -a "true\t''
false\t''"
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l persistent -d 'Kept when empty and across restarts' -r -f -a "true\t''
false\t''"
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l moderated -d 'Only participants may speak' -r -f -a "true\t''
false\t''"
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l password -d 'Needed to enter (empty removes it)' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l history -d 'Past messages kept and replayed' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l max-members -d 'Members present at most' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l owner -d 'Who owns the room (user@domain), on creation' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l subject -d 'The subject' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l public -d 'Listed in the directory' -r -f -a "true\t''
false\t''"
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l members-only -d 'Only members may enter' -r -f -a "true\t''
false\t''"
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l persistent -d 'Kept when empty and across restarts' -r -f -a "true\t''
false\t''"
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l moderated -d 'Only participants may speak' -r -f -a "true\t''
false\t''"
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l password -d 'Needed to enter (empty removes it)' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l history -d 'Past messages kept and replayed' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l max-members -d 'Members present at most' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l owner -d 'Who owns the room (user@domain), on creation' -r
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from close" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from close" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from kick" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from kick" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "list" -d 'The rooms, with who is in them'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "create" -d 'Make a room (its name, or its full address)'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "set" -d 'Change a room\'s settings or subject'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "close" -d 'Close a room: everyone in it is told and removed'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "kick" -d 'Remove a member from a room'
complete -c parley -n "__fish_parley_using_subcommand room; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand registrations; and not __fish_seen_subcommand_from remove help" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand registrations; and not __fish_seen_subcommand_from remove help" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand registrations; and not __fish_seen_subcommand_from remove help" -a "remove" -d 'End a user\'s bindings: all, or the one with this contact URI'
complete -c parley -n "__fish_parley_using_subcommand registrations; and not __fish_seen_subcommand_from remove help" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand registrations; and __fish_seen_subcommand_from remove" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand registrations; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand registrations; and __fish_seen_subcommand_from help" -f -a "remove" -d 'End a user\'s bindings: all, or the one with this contact URI'
complete -c parley -n "__fish_parley_using_subcommand registrations; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand log-level" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand log-level" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand reload" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand reload" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand backup" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand backup" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -f -a "migrate" -d 'Copy everything (users, bindings, kept messages, presence rules, the archive, rooms) from one store into an empty one, then count both to show nothing was lost. Stop Parley first'
complete -c parley -n "__fish_parley_using_subcommand store; and not __fish_seen_subcommand_from migrate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand store; and __fish_seen_subcommand_from migrate" -l from -d 'The source: `sqlite:PATH` (default: the configuration\'s database)' -r
complete -c parley -n "__fish_parley_using_subcommand store; and __fish_seen_subcommand_from migrate" -l to -d 'The destination: `postgres://user@host/database` (default: the configuration\'s `[store] url`)' -r
complete -c parley -n "__fish_parley_using_subcommand store; and __fish_seen_subcommand_from migrate" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand store; and __fish_seen_subcommand_from migrate" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "migrate" -d 'Copy everything (users, bindings, kept messages, presence rules, the archive, rooms) from one store into an empty one, then count both to show nothing was lost. Stop Parley first'
complete -c parley -n "__fish_parley_using_subcommand store; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand completions" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand completions" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand man" -l dir -d 'Write every page into this directory' -r -F
complete -c parley -n "__fish_parley_using_subcommand man" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand man" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand pidf; and not __fish_seen_subcommand_from parse help" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand pidf; and not __fish_seen_subcommand_from parse help" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand pidf; and not __fish_seen_subcommand_from parse help" -f -a "parse" -d 'Check a PIDF document (RFC 3863, with RPID and CIPID); print it in canonical form, or say in one line why it is refused (exit 1)'
complete -c parley -n "__fish_parley_using_subcommand pidf; and not __fish_seen_subcommand_from parse help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand pidf; and __fish_seen_subcommand_from parse" -l config -d 'The configuration file. Without it: $PARLEY_CONFIG, then /etc/parley/parley.toml, then ./config/parley.toml, then the default built into Parley' -r -F
complete -c parley -n "__fish_parley_using_subcommand pidf; and __fish_seen_subcommand_from parse" -s h -l help -d 'Print help'
complete -c parley -n "__fish_parley_using_subcommand pidf; and __fish_seen_subcommand_from help" -f -a "parse" -d 'Check a PIDF document (RFC 3863, with RPID and CIPID); print it in canonical form, or say in one line why it is refused (exit 1)'
complete -c parley -n "__fish_parley_using_subcommand pidf; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "run" -d 'Run the server'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "status" -d 'Print the live state of a running Parley through its admin API'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "check-config" -d 'Check a configuration as `parley run` would (the TOML, every value, the files it names, the listeners) and print what it would listen on'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "user" -d 'Provision users of the local domains (stored as digest HA1 values)'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "sip" -d 'SIP message tools'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "presence" -d 'Who may watch whom: presence authorization rules. A running server applies a change within a second'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "archive" -d 'The compliance archive'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "room" -d 'The chat rooms of the conference domain, through the admin API of a running Parley'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "registrations" -d 'The bindings of a running Parley (all, or one user\'s), through its admin API; `registrations remove USER [CONTACT]` ends them'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "log-level" -d 'Show the log filter of a running Parley, or change it at once (`debug`, `info,parley=debug` …) until the next reload or restart'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "reload" -d 'Make a running Parley read its configuration file again (as SIGHUP does) and say what changed and what needs a restart'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "backup" -d 'Copy the database to FILE, consistently, while Parley runs (SQLite `VACUUM INTO`)'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "store" -d 'The store: move a node\'s data into a cluster\'s database'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "completions" -d 'Print a shell completion script (bash, zsh, fish, elvish, powershell)'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "man" -d 'Print the manual page (roff; `parley man | man -l -`), or write it and one page per subcommand (parley-run.1 …) into a directory'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "pidf" -d 'Presence document (PIDF) tools'
complete -c parley -n "__fish_parley_using_subcommand help; and not __fish_seen_subcommand_from run status check-config user sip presence archive room registrations log-level reload backup store completions man pidf help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "add" -d 'Add a user, or set a new password for one'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List the users'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "remove" -d 'Remove a user'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from sip" -f -a "parse" -d 'Parse a SIP message; print it as Parley would forward it, or say why it is refused'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from presence" -f -a "allow" -d 'Let WATCHER see PRESENTITY (approves a pending watcher)'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from presence" -f -a "deny" -d 'Refuse WATCHER: its subscriptions end and new ones get 403'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from presence" -f -a "block" -d 'Accept WATCHER but show it only "closed" (polite blocking)'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from presence" -f -a "forget" -d 'Remove the rule: the default policy applies again'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from presence" -f -a "rules" -d 'List the rules'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from archive" -f -a "search" -d 'Archived messages, newest first, matching every condition given'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "list" -d 'The rooms, with who is in them'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "create" -d 'Make a room (its name, or its full address)'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "set" -d 'Change a room\'s settings or subject'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "close" -d 'Close a room: everyone in it is told and removed'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from room" -f -a "kick" -d 'Remove a member from a room'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from registrations" -f -a "remove" -d 'End a user\'s bindings: all, or the one with this contact URI'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from store" -f -a "migrate" -d 'Copy everything (users, bindings, kept messages, presence rules, the archive, rooms) from one store into an empty one, then count both to show nothing was lost. Stop Parley first'
complete -c parley -n "__fish_parley_using_subcommand help; and __fish_seen_subcommand_from pidf" -f -a "parse" -d 'Check a PIDF document (RFC 3863, with RPID and CIPID); print it in canonical form, or say in one line why it is refused (exit 1)'
