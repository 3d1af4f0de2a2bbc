#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/<target>/seed-*). Re-run after changing it:
   python3 fuzz/scripts/make_seeds.py"""
import json, os, random, struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])

def frame(opcode, payload=b"", fin=True, masked=True, rsv=0):
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    m = 0x80 if masked else 0
    if n < 126:
        head += bytes([m | n])
    elif n <= 0xFFFF:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))

def text(s, **kw): return frame(0x1, s, **kw)
def close(code=None, reason=""):
    return frame(0x8, b"" if code is None else struct.pack(">H", code) + reason.encode())
def cmd(**obj): return text(json.dumps(obj))

def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

UPGRADE = (b"GET /ws?nick=fuzz&room=lobby HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")

# ws_frames: the bytes after a valid upgrade to /ws (the harness sends the upgrade itself).
ws = {
    "message-close": text("hello") + close(1000, "bye"),
    "commands": cmd(type="join", room="rust", nick="ann", since=3, epoch="fuzz-1")
        + cmd(type="nick", nick="bob") + cmd(type="typing") + cmd(type="message", text="hi all")
        + text("{not json") + cmd(type="shout") + close(1000),
    "fragmented": text("hel", fin=False) + frame(0x0, "lo, ", fin=False)
        + frame(0x9, "ping-in-between") + frame(0x0, "world") + close(1001),
    "ping-pong": frame(0x9, "are you there") + frame(0xA, "") + close(),
    "close-3000": text("x") + close(3000, "application reason"),
    "binary": frame(0x2, b"\x00\x01\x02") + close(1000),
    "unmasked": frame(0x1, "no mask", masked=False),
    "too-big": text("a" * 1500, fin=False) + frame(0x0, "b" * 1500),
    "bad-utf8": frame(0x1, b"\xc3\x28 invalid"),
    "bad-close-code": close(1005),
    "long-close": frame(0x8, struct.pack(">H", 1000) + b"r" * 124),
    "rsv-bits": frame(0x1, "compressed?", rsv=4),
    "hang-up": text("message then EOF, no close"),
    "flood": b"".join(text("spam %d" % i) for i in range(60)),
    "long-text": text("y" * 300),
}
for name, data in ws.items():
    write("ws_frames", name, data)

# http_upgrade: raw request bytes.
def req(line, headers=(), body=b""):
    out = line.encode() + b"\r\n" + b"".join(h.encode() + b"\r\n" for h in headers) + b"\r\n"
    return out + body
host = "Host: localhost"
http = {
    "upgrade-chat": UPGRADE + text("hello") + cmd(type="join", room="r2") + close(1000),
    "keepalive": req("GET / HTTP/1.1", [host]) + req("GET /healthz HTTP/1.1", [host])
        + req("GET /status HTTP/1.1", [host, "Connection: close"]),
    "metrics": req("GET /metrics HTTP/1.1", [host]),
    "kick": req("POST /admin/kick?room=lobby&nick=fuzz HTTP/1.1",
                [host, "Authorization: Bearer fuzz-token", "Content-Length: 0"]),
    "kick-wrong-token": req("POST /admin/kick?room=lobby HTTP/1.1",
                            [host, "Authorization: Bearer nope", "Content-Length: 3"], b"abc"),
    "upgrade-no-key": req("GET /ws HTTP/1.1", [host, "Upgrade: websocket", "Connection: Upgrade",
                                               "Sec-WebSocket-Version: 13"]),
    "upgrade-origin": UPGRADE.replace(b"\r\n\r\n", b"\r\nOrigin: http://evil.example\r\n\r\n"),
    "upgrade-bad-since": UPGRADE.replace(b"/ws?nick=fuzz&room=lobby", b"/ws?since=-1"),
    "head": req("HEAD /index.html HTTP/1.1", [host]),
    "post-ws": req("POST /ws HTTP/1.1", [host, "Transfer-Encoding: chunked"], b"3\r\nabc\r\n0\r\n\r\n"),
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "traversal": req("GET /../../etc/passwd HTTP/1.1", [host]) + req("GET /%2e%2e/x HTTP/1.1", [host]),
    "partial-head": b"GET / HTTP/1.1\r\nHost: loc",
    "http10": req("GET /healthz HTTP/1.0"),
}
for name, data in http.items():
    write("http_upgrade", name, data)

# protocol_decode: client text frames.
decode = {
    "plain": "hello world",
    "message": json.dumps({"type": "message", "text": "hi \"there\"\n"}),
    "join": json.dumps({"type": "join", "room": "rust", "nick": "ann", "since": 41, "epoch": "e-1"}),
    "join-null": '{"type":"join","room":null,"since":null}',
    "nick": json.dumps({"type": "nick", "nick": "bob"}),
    "typing": '{"type":"typing"}',
    "unknown": '{"type":"shout","text":"x"}',
    "bad-json": '{"type":"message",',
    "wrong-field": '{"type":"join","since":-1}',
    "escapes": '{"type":"message","text":"\\u00e9\\ud83d\\ude00\\u0000"}',
    "duplicate": '{"type":"nick","nick":"a","nick":"b"}',
    "whitespace": '  \n {"type":"typing"}  ',
    # Found by this target: serde_json's Value reads this token key as raw JSON text.
    "raw-value-token": '{"$serde_json::private::RawValue":null}',
    "raw-value-nested": '{"type":"message","text":{"$serde_json::private::RawValue":"\\"hi\\""}}',
}
for name, data in decode.items():
    write("protocol_decode", name, data.encode())

# engine_ops: Arbitrary-decoded op sequences; random bytes are as meaningful as any here.
rng = random.Random(6)
for i in range(6):
    write("engine_ops", "random-%d" % i, bytes(rng.randrange(256) for _ in range(64 << i)))
