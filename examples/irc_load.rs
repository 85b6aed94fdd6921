//! Load for IRC private messages.
//!
//!   irc_load recv PORT NICK COUNT   registers NICK, prints "ready", counts
//!                                   PRIVMSG lines to it until COUNT came
//!                                   (or 60 s of silence), then prints
//!                                   "COUNT SECONDS" from the first to the last.
//!   irc_load send PORT NICK TARGET COUNT   registers NICK and sends COUNT
//!                                   PRIVMSG lines to TARGET as fast as it can.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn register(port: u16, nick: &str) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the IRC server");
    s.set_nodelay(true).ok();
    let mut w = s.try_clone().unwrap();
    write!(w, "NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("the IRC server closed before the welcome");
        }
        if let Some(rest) = line.strip_prefix("PING ") {
            write!(w, "PONG {rest}").unwrap();
        }
        if line.split(' ').nth(1) == Some("001") {
            return (w, r);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args[2].parse().expect("port");
    let nick = &args[3];
    match args[1].as_str() {
        "recv" => {
            let count: usize = args[4].parse().expect("count");
            let (mut w, mut r) = register(port, nick);
            r.get_ref()
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            println!("ready");
            let (mut got, mut first, mut last) = (0usize, None, Instant::now());
            let mut line = String::new();
            while got < count {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if let Some(rest) = line.strip_prefix("PING ") {
                    write!(w, "PONG {rest}").unwrap();
                    continue;
                }
                if line.contains(&format!(" PRIVMSG {nick} :")) {
                    got += 1;
                    last = Instant::now();
                    first.get_or_insert(last);
                }
            }
            let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
            println!("{got} {secs:.3}");
        }
        "send" => {
            let target = &args[4];
            let count: usize = args[5].parse().expect("count");
            let (mut w, _r) = register(port, nick);
            let mut out = Vec::with_capacity(64 * 1024);
            for i in 0..count {
                write!(out, "PRIVMSG {target} :Across networks {i}\r\n").unwrap();
                if out.len() > 60_000 {
                    w.write_all(&out).unwrap();
                    out.clear();
                }
            }
            w.write_all(&out).unwrap();
            w.flush().unwrap();
            // Stay until the server has read it all.
            std::thread::sleep(Duration::from_secs(2));
        }
        _ => panic!("recv or send"),
    }
}
