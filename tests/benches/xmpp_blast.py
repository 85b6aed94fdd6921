"""A minimal, fast XMPP client for the load script (plain sockets, no
library in the way, so the client is not the bottleneck).

  xmpp_blast.py send JID PASSWORD PORT TO COUNT   sends COUNT chat messages
  xmpp_blast.py recv JID PASSWORD PORT COUNT      waits for COUNT messages

Both log in over plain TCP on 127.0.0.1 with SASL PLAIN. `recv` prints
"ready" once online and the seconds between its first and last message;
`send` prints the seconds it took to write them all.
"""

import base64
import socket
import sys
import time


class Stream:
    def __init__(self, port, jid, password):
        self.user, self.domain = jid.split("@")
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.open()
        self.until(b"</stream:features>")
        token = base64.b64encode(f"\0{self.user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        reply = self.until(b"/>")
        if b"success" not in reply:
            raise SystemExit(f"login failed: {reply!r}")
        self.buf = b""
        self.open()
        self.until(b"</stream:features>")
        self.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  "<resource>load</resource></bind></iq>")
        self.until(b"</iq>")
        self.send("<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        self.until(b"id='s1'")
        self.until(b">")
        self.send("<presence/>")

    def open(self):
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  f"xmlns:stream='http://etherx.jabber.org/streams' to='{self.domain}' version='1.0'>")

    def send(self, text):
        self.sock.sendall(text.encode())

    def until(self, pattern):
        while pattern not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit(f"closed; read {self.buf[-500:]!r}")
            self.buf += data
        i = self.buf.index(pattern) + len(pattern)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out


def main():
    mode, jid, password, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    s = Stream(port, jid, password)
    if mode == "send":
        to, count = sys.argv[5], int(sys.argv[6])
        start = time.monotonic()
        batch = []
        for n in range(count):
            batch.append(f"<message to='{to}' type='chat' id='m{n}'><body>load message {n}</body></message>")
            if len(batch) == 100:
                s.send("".join(batch))
                batch = []
        if batch:
            s.send("".join(batch))
        print(f"{time.monotonic() - start:.3f}", flush=True)
        # Close gracefully and wait for the server to close too: exiting
        # with unread data would reset the connection and lose what the
        # server had not read yet.
        s.send("</stream:stream>")
        s.sock.settimeout(300)
        try:
            while b"</stream:stream>" not in s.buf[-64:]:
                data = s.sock.recv(262144)
                if not data:
                    break
                s.buf = s.buf[-64:] + data
        except socket.timeout:
            pass
    else:
        count = int(sys.argv[5])
        print("ready", flush=True)
        seen, first, tail = 0, None, b""
        s.sock.settimeout(120)
        while seen < count:
            data = s.sock.recv(262144)
            if not data:
                break
            if first is None:
                first = time.monotonic()
            chunk = tail + data
            seen += chunk.count(b"</body>")
            tail = chunk[-6:] if not chunk.endswith(b"</body>") else b""
        print(f"{time.monotonic() - (first or time.monotonic()):.3f} {seen}", flush=True)


if __name__ == "__main__":
    main()
