#!/usr/bin/env python3
"""One MQTT connection (3.1.1 or 5) driven line by line, for tests that act
on a client that stays connected: a raw socket client, no MQTT library.

usage: mqtt_session.py [--v5] [--keep-session] [--will TOPIC MSG]
                       PORT CLIENTID [USERNAME [PASSWORD]]
--keep-session: 3.1.1 clean session 0; 5: clean start 0 and a session
expiry interval of one hour.

Prints "connack RC SP" (the CONNACK return/reason code and the session
present flag; exits after a refusal), then reads commands on stdin, one a
line, and answers each on stdout:
  sub TOPIC [QOS]  -> "suback N" (granted QoS, >= 128 = refused)
  pub TOPIC MSG    -> "puback" (QoS 1 publish)
  recv SECS        -> one "msg TOPIC PAYLOAD" a message received within
                      SECS, then "done"
  closed SECS      -> "closed" if the broker closes the connection within
                      SECS, else "open"
  quit             -> disconnects (normally: no will) and exits
"""
import argparse
import select
import socket
import struct
import sys
import time


def enc_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack('!H', len(b)) + b


def enc_len(n):
    out = b''
    while True:
        d, n = n % 128, n // 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


def dec_len(buf, i):
    n, mul = 0, 1
    while True:
        b = buf[i]
        i += 1
        n += (b & 127) * mul
        mul *= 128
        if not b & 128:
            return n, i


def packet(kind, body):
    return bytes([kind]) + enc_len(len(body)) + body


class Conn:
    def __init__(self, sock, v5):
        self.s, self.v5, self.buf = sock, v5, b''

    def read(self, timeout):
        """One packet (type byte, body), or None on timeout; EOFError when closed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    n, i = dec_len(self.buf, 1)
                except IndexError:
                    n = None
                if n is not None and len(self.buf) >= i + n:
                    head, body = self.buf[0], self.buf[i:i + n]
                    self.buf = self.buf[i + n:]
                    return head, body
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.s], [], [], left)
            if not r:
                return None
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError('closed')
            self.buf += chunk

    def publish_of(self, head, body):
        qos = (head >> 1) & 3
        tl = struct.unpack('!H', body[:2])[0]
        topic = body[2:2 + tl].decode(errors='replace')
        i = 2 + tl
        if qos:
            pid = body[i:i + 2]
            i += 2
            self.s.sendall(packet(0x40, pid))  # PUBACK
        if self.v5:
            plen, i = dec_len(body, i)
            i += plen
        return topic, body[i:].decode(errors='replace')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--v5', action='store_true')
    ap.add_argument('--keep-session', action='store_true')
    ap.add_argument('--will', nargs=2)
    ap.add_argument('port', type=int)
    ap.add_argument('clientid')
    ap.add_argument('username', nargs='?')
    ap.add_argument('password', nargs='?')
    a = ap.parse_args()
    flags = (0 if a.keep_session else 0x02) | (0x80 if a.username is not None else 0) | \
        (0x40 if a.password is not None else 0)
    if a.will:
        flags |= 0x04
    props = b''
    if a.v5 and a.keep_session:
        props = b'\x11' + struct.pack('!I', 3600)  # session expiry interval
    body = enc_str('MQTT') + bytes([5 if a.v5 else 4, flags]) + struct.pack('!H', 60)
    if a.v5:
        body += enc_len(len(props)) + props
    body += enc_str(a.clientid)
    if a.will:
        if a.v5:
            body += b'\x00'
        body += enc_str(a.will[0]) + enc_str(a.will[1])
    if a.username is not None:
        body += enc_str(a.username)
    if a.password is not None:
        body += enc_str(a.password)
    s = socket.create_connection(('127.0.0.1', a.port), timeout=10)
    c = Conn(s, a.v5)
    s.sendall(packet(0x10, body))
    p = c.read(10)
    if p is None:
        print('error no connack', flush=True)
        return
    head, body = p
    print(f'connack {body[1]} {body[0] & 1}', flush=True)
    if body[1] != 0:
        return
    pid = 1
    pending = []  # messages that arrived while waiting for something else
    for line in sys.stdin:
        cmd = line.split(None, 2)
        if not cmd:
            continue
        if cmd[0] == 'sub':
            qos = int(cmd[2]) if len(cmd) > 2 else 0
            sb = struct.pack('!H', pid) + (b'\x00' if a.v5 else b'') + enc_str(cmd[1].strip()) + \
                bytes([qos])
            s.sendall(packet(0x82, sb))
            while True:
                head, body = c.read(10)
                if head >> 4 == 9:
                    rc = body[2:]
                    if a.v5:
                        plen, i = dec_len(body, 2)
                        rc = body[i + plen:]
                    print(f'suback {rc[0]}', flush=True)
                    break
                if head >> 4 == 3:
                    pending.append(c.publish_of(head, body))
            pid += 1
        elif cmd[0] == 'pub':
            pb = enc_str(cmd[1]) + struct.pack('!H', pid) + (b'\x00' if a.v5 else b'') + \
                (cmd[2].strip().encode() if len(cmd) > 2 else b'')
            s.sendall(packet(0x32, pb))
            while True:
                head, body = c.read(10)
                if head >> 4 == 4:
                    print('puback', flush=True)
                    break
                if head >> 4 == 3:
                    pending.append(c.publish_of(head, body))
            pid += 1
        elif cmd[0] == 'recv':
            for t, m in pending:
                print(f'msg {t} {m}', flush=True)
            pending = []
            end = time.monotonic() + float(cmd[1])
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                p = c.read(left)
                if p is None:
                    break
                if p[0] >> 4 == 3:
                    t, m = c.publish_of(*p)
                    print(f'msg {t} {m}', flush=True)
            print('done', flush=True)
        elif cmd[0] == 'closed':
            end = time.monotonic() + float(cmd[1])
            try:
                while time.monotonic() < end:
                    p = c.read(end - time.monotonic())
                    if p is None:
                        break
                print('open', flush=True)
            except (EOFError, OSError):
                print('closed', flush=True)
                return
        elif cmd[0] == 'quit':
            s.sendall(b'\xe0\x00')
            break


if __name__ == '__main__':
    try:
        main()
    except (OSError, EOFError) as e:
        print(f'error {e}', flush=True)
        sys.exit(1)
