import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HullApiError, Sandbox } from 'hull/sdk';
import { leaseDir } from '../../src/network/ip-leases.js';
import { bridgeNetwork, removeBridge } from '../../src/network/serve-bridge.js';
import { guestResolvConf } from '../../src/serve/sandbox-network.js';
import { sandboxDir } from '../../src/serve/sandbox-records.js';
import { freePort, pushBusybox, type Registry, startRegistry } from '../fixtures/registry.js';
import {
  answers,
  answersSoon,
  serveStateDir,
  startServe as startServeOn,
  stopServe as stopServeRun,
} from '../fixtures/serve.js';
import { type HullRun, hull, privateDirs, runCommand } from './harness.js';

/** "The internet" of this test: a network namespace routed through the host, outside any sandbox's subnet. */
const INTERNET_HOST_END = '198.51.100.1';
const INTERNET_SERVER = '198.51.100.2';

/**
 * Issue 27, networking: sandboxes with network 'internet' (the default) reach out through NAT,
 * and nothing else: not each other, not the host's own services on any of its addresses, not
 * the API's TCP listener. A port of theirs is reached from the host by its URL, which survives
 * a restarted server; everything of a sandbox's network goes with it. Three VMs in all.
 */
describe('hull serve: sandbox networking', { timeout: 1_200_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let registry: Registry;
  let image: string;
  let env: NodeJS.ProcessEnv;
  let server: HullRun | undefined;
  let api: string;
  let apiPort: number;
  let token: string;
  let tokenFile: string;
  const bridge = `hn${process.pid % 100000}`;
  const subnet = `10.213.${process.pid % 250}.0/24`;
  let hostService: Server;
  let hostPort: number;
  const internetNetns = `hull-inet-${process.pid}`;
  const internetVeth = `hi${process.pid % 100000}`;
  let internetServer: ChildProcess | undefined;
  const internetPort = 8088;
  let a: Sandbox;
  let b: Sandbox;
  let none: Sandbox;

  async function startServe(): Promise<void> {
    // On every address, so that the sandboxes could reach it if the firewall let them.
    server = await startServeOn(
      dirs.root,
      ['--listen', `0.0.0.0:${apiPort}`, '--token-file', tokenFile],
      env,
    );
  }

  async function stopServe(signal: NodeJS.Signals): Promise<void> {
    await stopServeRun(server, signal);
    server = undefined;
  }

  const run = async (sandbox: Sandbox, cmd: string) => {
    const result = await sandbox.commands.run(cmd, { timeoutMs: 60_000 });
    return result;
  };

  /**
   * An HTTP GET from inside the sandbox with busybox nc (its wget crashes in this image's guest
   * when given a timeout): the answer's body, or undefined when nothing answered within 3 s.
   */
  const getScript = (target: string) => {
    const [host, port] = target.split(':');
    return `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} ${port}`;
  };

  async function getFrom(sandbox: Sandbox, target: string): Promise<string | undefined> {
    const { stdout } = await run(sandbox, getScript(target));
    return stdout.startsWith('HTTP/') ? stdout.slice(stdout.indexOf('\r\n\r\n') + 4) : undefined;
  }

  /** Each HOST:PORT tried from inside the sandbox at once; the ones that answered. */
  async function reachedFrom(sandbox: Sandbox, targets: string[]): Promise<string[]> {
    const script = targets
      .map((t) => `(${getScript(t)} 2>/dev/null | grep -q '^HTTP/' && echo "REACHED ${t}") &`)
      .join('\n');
    const { stdout } = await run(sandbox, `${script}\nwait`);
    return stdout
      .split('\n')
      .filter((l) => l.startsWith('REACHED '))
      .map((l) => l.slice(8))
      .sort();
  }

  async function sandboxAddress(sandbox: Sandbox): Promise<string> {
    const { stdout } = await run(sandbox, 'ip -4 -o addr show eth0');
    const match = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(stdout);
    assert.ok(match, `the sandbox has an address on eth0: ${stdout}`);
    return match[1]!;
  }

  async function vethsOnBridge(): Promise<string[]> {
    const r = await runCommand('ip', ['-json', 'link', 'show', 'master', bridge]);
    return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
  }

  const sandboxNamespaces = async () =>
    (await readdir('/run/netns')).filter((name) => name.startsWith('hull-sb-')).sort();

  /** Whether a server of a test's private root (under the temporary directory) holds this sandbox. */
  const someServerHolds = async (sandboxId: string) => {
    for (const base of (await readdir(tmpdir())).filter((name) => name.startsWith('hull-'))) {
      for (const dir of await readdir(join(tmpdir(), base)).catch(() => [] as string[])) {
        if (
          await stat(sandboxDir(join(tmpdir(), base, dir), sandboxId)).then(
            () => true,
            () => false,
          )
        )
          return true;
      }
    }
    return false;
  };

  const netnsExists = (sandbox: Sandbox) =>
    stat(`/run/netns/hull-${sandbox.sandboxId}`).then(
      () => true,
      () => false,
    );

  before(async () => {
    dirs = await privateDirs('serve-net');
    // The images and templates of $HULL_STATE_DIR (a guest image built from this checkout).
    const state = await serveStateDir(dirs.scratch);
    env = { HULL_STATE_DIR: state, HULL_SERVE_BRIDGE: bridge, HULL_SERVE_SUBNET: subnet };
    registry = await startRegistry(join(dirs.scratch, 'registry'));
    image = await pushBusybox(dirs.scratch, registry);

    // A service of the host's own, on every address.
    hostService = createServer((_req, res) => res.end('host service'));
    await new Promise<void>((resolve) => hostService.listen(0, '0.0.0.0', resolve));
    hostPort = (hostService.address() as { port: number }).port;

    // "The internet": a namespace with no route back to the sandboxes' subnet, so that its
    // server can only answer a sandbox whose address the host translated (NAT).
    const sh = async (command: string) => {
      const r = await runCommand('sh', ['-c', command]);
      assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    };
    await sh(
      [
        `ip netns add ${internetNetns}`,
        `ip link add ${internetVeth} type veth peer name eth0 netns ${internetNetns}`,
        `ip addr add ${INTERNET_HOST_END}/24 dev ${internetVeth}`,
        `ip link set ${internetVeth} up`,
        `ip -n ${internetNetns} addr add ${INTERNET_SERVER}/24 dev eth0`,
        `ip -n ${internetNetns} link set eth0 up`,
      ].join(' && '),
    );
    internetServer = spawn(
      'ip',
      [
        'netns',
        'exec',
        internetNetns,
        'python3',
        '-c',
        [
          'import http.server',
          'class H(http.server.BaseHTTPRequestHandler):',
          '  def do_GET(s):',
          '    s.send_response(200); s.end_headers(); s.wfile.write(("peer " + s.client_address[0]).encode())',
          `http.server.HTTPServer(("0.0.0.0", ${internetPort}), H).serve_forever()`,
        ].join('\n'),
      ],
      { stdio: 'ignore' },
    );

    token = randomBytes(24).toString('hex');
    tokenFile = join(dirs.scratch, 'token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    apiPort = await freePort();
    api = `http://127.0.0.1:${apiPort}`;
    await startServe();
    // Made side by side: two with the default network, one without.
    [a, b, none] = await Promise.all([
      Sandbox.create({ api, token, image, timeoutMs: 900_000 }),
      Sandbox.create({ api, token, image, timeoutMs: 900_000 }),
      Sandbox.create({ api, token, image, timeoutMs: 900_000, network: 'none' }),
    ]);
  });

  after(async () => {
    for (const info of await Sandbox.list({ api, token }).catch(() => [])) {
      await (await Sandbox.connect(info.sandboxId, { api, token })).kill().catch(() => {});
    }
    await stopServe('SIGTERM');
    await registry?.stop();
    hostService?.close();
    if (internetServer?.pid) {
      internetServer.kill('SIGKILL');
    }
    await runCommand('ip', ['link', 'del', internetVeth]);
    await runCommand('ip', ['netns', 'del', internetNetns]);
    await removeBridge(bridgeNetwork(bridge, subnet));
    await dirs?.cleanup();
  });

  test("network 'internet' is the default: out through NAT, with the host's nameservers", async () => {
    assert.equal(a.info.network, 'internet');
    assert.equal(none.info.network, 'none');
    // The server sees the host's address, not the sandbox's: the only way its answer comes back.
    assert.equal(await getFrom(a, `${INTERNET_SERVER}:${internetPort}`), `peer ${INTERNET_HOST_END}`);
    assert.equal((await run(a, 'cat /etc/resolv.conf')).stdout, await guestResolvConf());
    assert.equal(
      await getFrom(none, `${INTERNET_SERVER}:${internetPort}`),
      undefined,
      "'none' reaches nothing",
    );
  });

  test('a sandbox reaches no other sandbox, no service of the host on any address, not the API', async () => {
    await run(b, 'mkdir -p /www && echo hello-from-b > /www/index.html && httpd -p 8080 -h /www');
    const bAddress = await sandboxAddress(b);
    assert.equal(await getFrom(b, '127.0.0.1:8080'), 'hello-from-b\n');
    const hostAddresses = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i && i.family === 'IPv4' && !i.internal)
      .map((i) => i!.address);
    assert.ok(hostAddresses.includes(subnet.replace(/0\/24$/, '1')), 'the gateway is one of them');
    const internet = `${INTERNET_SERVER}:${internetPort}`;
    const targets = [
      `${bAddress}:8080`,
      ...hostAddresses.flatMap((h) => [`${h}:${hostPort}`, `${h}:${apiPort}`]),
      // The sandbox's loopback is its own: the host's is out of reach by construction.
      `127.0.0.1:${hostPort}`,
      `127.0.0.1:${apiPort}`,
      // The control: tried the same way, the internet answers.
      internet,
    ];
    // The same check's control from the host: each of these answers it.
    assert.equal(await answers(`http://${bAddress}:8080/`, 10_000), 'hello-from-b\n');
    assert.equal(await answers(`http://${hostAddresses[0]}:${hostPort}/`, 10_000), 'host service');
    assert.ok(
      await answers(`http://${hostAddresses[0]}:${apiPort}/openapi.json`, 10_000),
      'the API answers the host',
    );
    assert.deepEqual(await reachedFrom(a, targets), [internet], 'only the internet answered the sandbox');
    await run(a, 'mkdir -p /www && echo hello-from-a > /www/index.html && httpd -p 8081 -h /www');
    assert.deepEqual(await reachedFrom(b, [`${await sandboxAddress(a)}:8081`, internet]), [internet]);
  });

  test('sandbox.ports.url(port) reaches a server in the sandbox from the host', async () => {
    const url = await b.ports.url(8080);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(await answersSoon(`${url}/`, 10_000), 'hello-from-b\n');
    assert.equal(await b.ports.url(8080), url, 'asked again, the same URL');
    await assert.rejects(none.ports.url(8080), (err) => {
      return err instanceof HullApiError && err.status === 409 && err.code === 'ERR_NO_NETWORK';
    });
    await assert.rejects(b.ports.url(0), (err) => err instanceof HullApiError && err.status === 400);
  });

  test('a port URL survives a server killed and restarted; a sandbox that ended meanwhile leaves nothing', async () => {
    const aUrl = await a.ports.url(8081);
    assert.equal(await answersSoon(`${aUrl}/`, 10_000), 'hello-from-a\n');
    const bUrl = await b.ports.url(8080);
    await stopServe('SIGKILL');
    assert.equal(await answers(`${aUrl}/`, 10_000), undefined, 'no server, no proxy');
    // b's container ends while no server runs.
    const deleted = await hull(['--root', dirs.root, 'delete', '--force', b.sandboxId], { env });
    assert.equal(deleted.code, 0, deleted.stderr);
    await startServe();
    assert.equal(await answersSoon(`${aUrl}/`, 10_000), 'hello-from-a\n', "a's URL answers again");
    assert.equal(await answers(`${bUrl}/`, 10_000), undefined, "b's URL is gone");
    assert.equal(await netnsExists(b), false, "b's network namespace is gone");
    const leases = await readdir(leaseDir(bridge));
    assert.equal(leases.length, 1, `only a's address is leased: ${leases}`);
    assert.equal((await vethsOnBridge()).length, 1, "only a's veth is on the bridge");
    assert.deepEqual(
      (await Sandbox.list({ api, token })).map((s) => s.sandboxId).sort(),
      [a.sandboxId, none.sandboxId].sort(),
    );
  });

  test('a create that fails after its network was made leaves none of it', async () => {
    const leases = await readdir(leaseDir(bridge));
    const veths = await vethsOnBridge();
    const namespaces = await sandboxNamespaces();
    // More memory than hull gives a VM: refused by `hull create`, after the network was made.
    await assert.rejects(Sandbox.create({ api, token, image, memoryMiB: 1024 * 1024 }), (err) => {
      return err instanceof HullApiError && err.status >= 400 && !err.message.includes('\n');
    });
    assert.deepEqual(await readdir(leaseDir(bridge)), leases);
    assert.deepEqual(await vethsOnBridge(), veths);
    // Other test files' servers make sandboxes meanwhile: a namespace new since is this
    // create's only when no server holds a sandbox of its name.
    const left: string[] = [];
    for (const name of await sandboxNamespaces()) {
      if (!namespaces.includes(name) && !(await someServerHolds(name.slice('hull-'.length)))) left.push(name);
    }
    assert.deepEqual(left, [], 'no namespace is left');
  });

  test("a killed sandbox's network goes with it: namespace, veth, lease, port URL", async () => {
    const aUrl = await a.ports.url(8081);
    assert.equal(await netnsExists(a), true);
    await a.kill();
    await none.kill();
    assert.equal(await netnsExists(a), false);
    assert.deepEqual(await vethsOnBridge(), []);
    assert.deepEqual(await readdir(leaseDir(bridge)), []);
    assert.equal(await answers(`${aUrl}/`, 10_000), undefined);
  });
});
