//! InspIRCd with Atheme services linked to it, started on loopback ports
//! of their own for a test: the IRCv3 network (CAP 302, sasl, server-time,
//! echo-message, away-notify, account-tag, extended-join, chghost, batch,
//! labeled-response, message-tags, MONITOR) with a TLS client port
//! (ssl_gnutls) and SASL PLAIN answered by Atheme's SaslServ.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ngircd::IrcClient;

/// A running InspIRCd and its services; stopped when dropped.
pub struct InspIrcd {
    ircd: Child,
    services: Child,
    dir: PathBuf,
    /// Its plain client port on 127.0.0.1.
    pub port: u16,
    /// Its TLS client port.
    pub tls_port: u16,
}

/// The services' server name (linked under the network).
const SERVICES: &str = "services.example.test";

impl InspIrcd {
    /// Starts InspIRCd named `name`, serving `cert` with `key` (PEM) on its
    /// TLS port, and Atheme linked to it; waits until the services answer.
    pub fn start(name: &str, cert: &Path, key: &Path) -> InspIrcd {
        Self::start_with(
            name,
            cert,
            key,
            "threshold=\"100000\" commandrate=\"1000000\"",
        )
    }

    /// [`InspIrcd::start`] with the connect class's flood settings given
    /// (`threshold="20" commandrate="1000"`: a penalty of 20 lines at most,
    /// one line a second paid back; past it the user is killed with
    /// "Excess Flood", fakelag being off).
    pub fn start_with(name: &str, cert: &Path, key: &Path, flood: &str) -> InspIrcd {
        let (port, tls_port, link) = (
            crate::sipp::free_port(),
            crate::sipp::free_port(),
            crate::sipp::free_port(),
        );
        let dir =
            std::env::temp_dir().join(format!("parley-inspircd-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("inspircd dir");
        std::fs::copy(cert, dir.join("cert.pem")).expect("certificate");
        std::fs::copy(key, dir.join("key.pem")).expect("key");
        let d = dir.display();
        let modules = [
            "cap",
            "ircv3",
            "ircv3_servertime",
            "ircv3_echomessage",
            "ircv3_accounttag",
            "ircv3_batch",
            "ircv3_chghost",
            "ircv3_ctctags",
            "ircv3_labeledresponse",
            "ircv3_msgid",
            "monitor",
            "namesx",
            "spanningtree",
            "services_account",
            "sasl",
            "ssl_gnutls",
            "sslinfo",
        ]
        .map(|m| format!("<module name=\"{m}\">\n"))
        .concat();
        std::fs::write(
            dir.join("inspircd.conf"),
            format!(
                "<server name=\"{name}\" description=\"Parley test network\" id=\"00A\" network=\"Test\">\n\
                 <admin name=\"test\" nick=\"test\" email=\"test@example.test\">\n\
                 <bind address=\"127.0.0.1\" port=\"{port}\" type=\"clients\">\n\
                 <bind address=\"127.0.0.1\" port=\"{tls_port}\" type=\"clients\" sslprofile=\"main\">\n\
                 <bind address=\"127.0.0.1\" port=\"{link}\" type=\"servers\">\n\
                 <connect allow=\"*\" timeout=\"60\" pingfreq=\"120\" sendq=\"1048576\" recvq=\"65536\" localmax=\"1000\" globalmax=\"1000\" maxchans=\"100\" resolvehostnames=\"no\" useident=\"no\" fakelag=\"no\" {flood}>\n\
                 <pid file=\"{d}/inspircd.pid\">\n\
                 <log method=\"file\" type=\"* -USERINPUT -USEROUTPUT\" level=\"default\" target=\"{d}/inspircd.log\">\n\
                 <dns server=\"127.0.0.1\" timeout=\"1\">\n\
                 <limits maxnick=\"30\" maxchan=\"64\" maxmodes=\"20\" maxident=\"11\" maxhost=\"64\" maxquit=\"255\" maxtopic=\"307\" maxkick=\"255\" maxreal=\"128\" maxgecos=\"128\" maxaway=\"200\">\n\
                 {modules}\
                 <sslprofile name=\"main\" provider=\"gnutls\" certfile=\"{d}/cert.pem\" keyfile=\"{d}/key.pem\" dhfile=\"\" hash=\"sha256\" requestclientcert=\"yes\">\n\
                 <sasl target=\"{SERVICES}\">\n\
                 <uline server=\"{SERVICES}\" silent=\"yes\">\n\
                 <link name=\"{SERVICES}\" ipaddr=\"127.0.0.1\" port=\"{link}\" allowmask=\"127.0.0.0/8\" sendpass=\"linkpw\" recvpass=\"linkpw\">\n"
            ),
        )
        .expect("inspircd conf");
        std::fs::write(dir.join("atheme.conf"), atheme_conf(name, link)).expect("atheme conf");
        std::fs::write(dir.join("services.db"), "").expect("atheme db");
        let _ = Command::new("chown")
            .args(["-R", "irc:irc"])
            .arg(&dir)
            .status();
        // InspIRCd refuses to run as root; Atheme runs as irc too.
        let ircd = Command::new("setpriv")
            .args([
                "--reuid=irc",
                "--regid=irc",
                "--init-groups",
                "inspircd",
                "--nofork",
            ])
            .arg(format!("--config={d}/inspircd.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("inspircd (tests/peers/install.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "inspircd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let services = Command::new("setpriv")
            .args([
                "--reuid=irc",
                "--regid=irc",
                "--init-groups",
                "atheme-services",
                "-n",
            ])
            .arg("-c")
            .arg(dir.join("atheme.conf"))
            .arg("-D")
            .arg(&dir)
            .arg("-l")
            .arg(dir.join("atheme.log"))
            .arg("-p")
            .arg(dir.join("atheme.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("atheme-services (tests/peers/install.sh installs it)");
        let net = InspIrcd {
            ircd,
            services,
            dir,
            port,
            tls_port,
        };
        // The services are up once NickServ answers.
        let mut probe = IrcClient::connect(port, "probe");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            probe.send("PRIVMSG NickServ :HELP");
            if probe
                .try_wait_for(|l| l.starts_with(":NickServ!"), Duration::from_millis(500))
                .is_some()
            {
                break;
            }
            assert!(Instant::now() < deadline, "Atheme did not link");
        }
        probe.send("QUIT");
        net
    }

    /// Registers the services account `account` with `password`, as a user
    /// would with NickServ.
    pub fn register_account(&self, account: &str, password: &str) {
        self.register_with_certificate(account, password, None);
    }

    /// [`InspIrcd::register_account`], with a client certificate's SHA-256
    /// fingerprint (hex) added to the account (NickServ CERT ADD): SASL
    /// EXTERNAL with that certificate logs in to it.
    pub fn register_with_certificate(
        &self,
        account: &str,
        password: &str,
        fingerprint: Option<&str>,
    ) {
        let mut c = IrcClient::connect(self.port, account);
        c.send(&format!(
            "PRIVMSG NickServ :REGISTER {password} {account}@example.test"
        ));
        c.wait_for(
            |l| l.starts_with(":NickServ!") && l.contains("is now registered"),
            Duration::from_secs(10),
        );
        if let Some(fp) = fingerprint {
            c.send(&format!("PRIVMSG NickServ :CERT ADD {fp}"));
            c.wait_for(
                |l| l.starts_with(":NickServ!") && l.contains(fp),
                Duration::from_secs(10),
            );
        }
        c.send("QUIT");
    }
}

fn atheme_conf(uplink: &str, port: u16) -> String {
    format!(
        r##"loadmodule "modules/protocol/inspircd";
loadmodule "modules/backend/opensex";
loadmodule "modules/crypto/pbkdf2v2";
loadmodule "modules/nickserv/main";
loadmodule "modules/nickserv/register";
loadmodule "modules/nickserv/identify";
loadmodule "modules/nickserv/help";
loadmodule "modules/saslserv/main";
loadmodule "modules/saslserv/plain";
loadmodule "modules/saslserv/external";
loadmodule "modules/nickserv/cert";
serverinfo {{
	name = "{SERVICES}"; desc = "Atheme"; numeric = "00B"; recontime = 1;
	netname = "Test"; hidehostsuffix = "users.test"; adminname = "test";
	adminemail = "test@example.test"; registeremail = "test@example.test";
	mta = "/bin/true"; loglevel = {{ error; info; }}; maxlogins = 5;
	maxusers = 50; mdlimit = 30; emaillimit = 100; emailtime = 300;
	auth = none; casemapping = rfc1459;
}};
uplink "{uplink}" {{ host = "127.0.0.1"; password = "linkpw"; port = {port}; }};
nickserv {{ nick = "NickServ"; user = "NickServ"; host = "{SERVICES}"; real = "Nickname Services"; maxnicks = 5; expire = 0; }};
saslserv {{ nick = "SaslServ"; user = "SaslServ"; host = "{SERVICES}"; real = "SASL"; }};
general {{
	helpchan = "#help"; uflags = {{ hidemail; }}; cflags = {{ guard; }};
	flood_msgs = 0; flood_time = 10; kline_time = 7; commit_interval = 1;
	operstring = "is an IRC Operator"; servicestring = "is a Network Service";
	default_clone_allowed = 1000; default_clone_warn = 1000;
	uplink_sendq_limit = 1048576; language = "en"; immune_level = immune;
	load_database_mdeps;
}};
"##
    )
}

impl Drop for InspIrcd {
    fn drop(&mut self) {
        for child in [&mut self.services, &mut self.ircd] {
            let _ = child.kill();
            let _ = child.wait();
        }
        // setpriv exec()s the server: the kill reaches it.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
