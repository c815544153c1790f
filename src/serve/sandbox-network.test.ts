import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { guestResolvConf } from './sandbox-network.js';

test("the guest's resolver: the host's IPv4 nameservers but loopback ones, else systemd-resolved's upstream list", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hull-resolv-'));
  try {
    const host = join(dir, 'resolv.conf');
    const upstream = join(dir, 'upstream.conf');
    await writeFile(
      host,
      'nameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fd00::53\nsearch corp.example\noptions edns0\n',
    );
    assert.equal(
      await guestResolvConf([host, upstream]),
      'nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n',
    );
    await writeFile(host, 'nameserver 127.0.0.53\noptions edns0 trust-ad\n');
    await writeFile(upstream, 'nameserver 192.0.2.53\n');
    assert.equal(await guestResolvConf([host, upstream]), 'nameserver 192.0.2.53\n');
    await rm(upstream);
    assert.match(await guestResolvConf([host, upstream]), /^# .*no nameserver/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
