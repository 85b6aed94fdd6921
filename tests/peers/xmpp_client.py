"""A scripted XMPP client for Parley's tests (slixmpp).

Usage: xmpp_client.py JID PASSWORD HOST PORT

Reads commands as JSON lines on stdin and prints events as JSON lines on
stdout, flushed at once:
  {"cmd": "message", "to": J, "body": B, "id": I, "receipt": true, "state": "active"}
  {"cmd": "state", "to": J, "state": "composing"}
  {"cmd": "receipt", "to": J, "id": I}          XEP-0184 <received/>
  {"cmd": "subscribe", "to": J} / "subscribed" / "unsubscribe" / "unsubscribed"
  {"cmd": "presence", "show": "dnd", "status": "text"} / {"cmd": "unavailable"}
  {"cmd": "join", "room": R, "nick": N, "password": P, "maxstanzas": 5}
  {"cmd": "groupchat", "to": R, "body": B, "id": I} / {"cmd": "subject", "to": R, "subject": S}
  {"cmd": "leave", "room": R, "nick": N}
  {"cmd": "raw", "xml": X}                       any stanza, as it is
  {"cmd": "quit"}
Events: online, message (from, id, type, body, subject, delay, state, thread,
receipt_request, received), error (from, id, condition), presence (from, type,
show, status, and for XEP-0045: codes, role, affiliation, jid, nick),
presence_error (from, condition), subscription (from, type), iq (id, type,
xml).
"""

import asyncio
import json
import sys

import slixmpp
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

CHATSTATES = "http://jabber.org/protocol/chatstates"
RECEIPTS = "urn:xmpp:receipts"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
MUC = "http://jabber.org/protocol/muc"
MUC_USER = "http://jabber.org/protocol/muc#user"
DELAY = "urn:xmpp:delay"


def emit(**event):
    print(json.dumps(event, sort_keys=True), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password, plugin_config={
            "feature_mechanisms": {"unencrypted_plain": True, "unencrypted_scram": True},
        })
        self.add_event_handler("session_start", self.started)
        # Every message stanza, bodiless ones (chat states, receipts) too:
        # the library's "message" event fires only for those with a body.
        self.register_handler(Callback(
            "every message", MatchXPath("{jabber:client}message"), self.on_message))
        self.add_event_handler("presence_available", self.on_presence)
        self.add_event_handler("presence_unavailable", self.on_presence)
        self.add_event_handler("presence_error", self.on_presence_error)
        self.register_handler(Callback(
            "iq answers", MatchXPath("{jabber:client}iq"), self.on_iq))
        for kind in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            self.add_event_handler("presence_" + kind, self.on_subscription)
        # The test decides about subscriptions, not the library.
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False

    async def started(self, _):
        self.send_presence()
        await self.get_roster()
        emit(event="online", jid=str(self.boundjid))
        asyncio.ensure_future(self.commands())

    @staticmethod
    def condition(xml):
        err = xml.find("{jabber:client}error")
        if err is not None:
            for child in err:
                if child.tag.startswith("{" + STANZAS + "}") and not child.tag.endswith("}text"):
                    return child.tag.split("}")[1]
        return None

    @staticmethod
    def error_text(xml):
        err = xml.find("{jabber:client}error")
        if err is None:
            return None
        text = err.find("{%s}text" % STANZAS)
        return None if text is None else text.text

    def on_message(self, msg):
        xml = msg.xml
        if msg["type"] == "error":
            emit(event="error", id=msg["id"], condition=self.condition(xml),
                 text=self.error_text(xml), **{"from": str(msg["from"])})
            return
        state = None
        for child in xml:
            if child.tag.startswith("{" + CHATSTATES + "}"):
                state = child.tag.split("}")[1]
        received = xml.find("{%s}received" % RECEIPTS)
        subject = xml.find("{jabber:client}subject")
        delay = xml.find("{%s}delay" % DELAY)
        emit(
            event="message",
            id=msg["id"],
            type=msg["type"],
            body=msg["body"] or None,
            subject=None if subject is None else (subject.text or ""),
            delay=None if delay is None else delay.get("stamp"),
            state=state,
            receipt_request=xml.find("{%s}request" % RECEIPTS) is not None,
            received=received.get("id") if received is not None else None,
            thread=msg["thread"] or None,
            **{"from": str(msg["from"])},
        )

    def on_presence(self, pres):
        muc = {}
        x = pres.xml.find("{%s}x" % MUC_USER)
        if x is not None:
            item = x.find("{%s}item" % MUC_USER)
            muc["codes"] = sorted(s.get("code") for s in x.findall("{%s}status" % MUC_USER))
            if item is not None:
                muc.update(role=item.get("role"), affiliation=item.get("affiliation"),
                           jid=item.get("jid"), nick=item.get("nick"))
        emit(event="presence", type=pres["type"], show=pres["show"] or None,
             status=pres["status"] or None, **{"from": str(pres["from"])}, **muc)

    def on_presence_error(self, pres):
        emit(event="presence_error", condition=self.condition(pres.xml),
             text=self.error_text(pres.xml), **{"from": str(pres["from"])})

    def on_iq(self, iq):
        if iq["type"] in ("result", "error"):
            emit(event="iq", id=iq["id"], type=iq["type"],
                 xml=ET.tostring(iq.xml, encoding="unicode"))

    def on_subscription(self, pres):
        emit(event="subscription", type=pres["type"], **{"from": str(pres["from"])})

    async def commands(self):
        loop = asyncio.get_event_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            kind = cmd["cmd"]
            if kind == "quit":
                break
            if kind == "message":
                m = self.make_message(mto=cmd["to"], mbody=cmd.get("body"), mtype="chat")
                if cmd.get("id"):
                    m["id"] = cmd["id"]
                if cmd.get("receipt"):
                    m.xml.append(ET.Element("{%s}request" % RECEIPTS))
                if cmd.get("state"):
                    m.xml.append(ET.Element("{%s}%s" % (CHATSTATES, cmd["state"])))
                m.send()
            elif kind == "state":
                m = self.make_message(mto=cmd["to"], mtype="chat")
                m.xml.append(ET.Element("{%s}%s" % (CHATSTATES, cmd["state"])))
                m.send()
            elif kind == "receipt":
                m = self.make_message(mto=cmd["to"])
                r = ET.Element("{%s}received" % RECEIPTS)
                r.set("id", cmd["id"])
                m.xml.append(r)
                m.send()
            elif kind in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
                self.send_presence(pto=cmd["to"], ptype=kind)
            elif kind == "presence":
                self.send_presence(pshow=cmd.get("show"), pstatus=cmd.get("status"))
            elif kind == "unavailable":
                self.send_presence(ptype="unavailable")
            elif kind == "join":
                p = self.make_presence(pto="%s/%s" % (cmd["room"], cmd["nick"]))
                x = ET.SubElement(p.xml, "{%s}x" % MUC)
                if cmd.get("password"):
                    ET.SubElement(x, "{%s}password" % MUC).text = cmd["password"]
                if cmd.get("maxstanzas") is not None:
                    ET.SubElement(x, "{%s}history" % MUC).set("maxstanzas", str(cmd["maxstanzas"]))
                p.send()
            elif kind == "leave":
                self.send_presence(pto="%s/%s" % (cmd["room"], cmd["nick"]), ptype="unavailable")
            elif kind == "groupchat":
                m = self.make_message(mto=cmd["to"], mbody=cmd["body"], mtype="groupchat")
                if cmd.get("id"):
                    m["id"] = cmd["id"]
                m.send()
            elif kind == "subject":
                m = self.make_message(mto=cmd["to"], mtype="groupchat")
                m["subject"] = cmd["subject"]
                m.send()
            elif kind == "raw":
                self.send_raw(cmd["xml"])
            emit(event="done", cmd=kind)
        self.disconnect()


def main():
    jid, password, host, port = sys.argv[1:5]
    client = Client(jid, password)
    # Plain TCP on loopback: the client's own link is not under test.
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.enable_plaintext = True
    client.connect(host, int(port))
    client.loop.run_until_complete(client.disconnected)


if __name__ == "__main__":
    main()
