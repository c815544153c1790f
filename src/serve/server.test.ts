import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ContainerImageStore } from '../container-images/store.js';
import { bridgeNetwork } from '../network/serve-bridge.js';
import { installRoot } from '../paths.js';
import { CommandSessions } from './command-sessions.js';
import { hullVerbs } from './container-lifecycle.js';
import { FileMetadata } from './file-metadata.js';
import { FileWatches } from './file-watch.js';
import { OPENAPI_PATH } from './openapi.js';
import { SandboxFiles } from './sandbox-files.js';
import { SandboxNetworks } from './sandbox-network.js';
import { SandboxService } from './sandbox-service.js';
import { buildServer, MAX_JSON_BODY_BYTES } from './server.js';

const TOKEN = 'a-token-of-thirty-two-characters';

describe('the API server', () => {
  let dir: string;
  let app: Awaited<ReturnType<typeof buildServer>>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hull-serve-unit-'));
    const settings = { root: join(dir, 'root'), debug: false };
    app = await buildServer({
      sandboxes: new SandboxService(
        settings.root,
        new ContainerImageStore(join(dir, 'images')),
        hullVerbs(settings),
        new SandboxNetworks(bridgeNetwork('hull-unit0', '10.209.0.0/24'), settings.root, '127.0.0.1'),
      ),
      commands: new CommandSessions(settings),
      files: new SandboxFiles(settings),
      metadata: new FileMetadata(settings),
      watches: new FileWatches(settings),
      token: TOKEN,
    });
  });
  after(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  const authorized = { authorization: `Bearer ${TOKEN}` };

  test('serves the OpenAPI document that is checked in (run `npm run openapi` after changing the API)', async () => {
    const served = await app.inject({ method: 'GET', url: OPENAPI_PATH, headers: authorized });
    assert.equal(served.statusCode, 200);
    const checkedIn = JSON.parse(await readFile(join(installRoot(), 'docs', 'api', 'openapi.json'), 'utf8'));
    assert.deepEqual(served.json(), checkedIn);
  });

  test('a request without the token, or with a wrong one, is refused with 401', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }]) {
      const r = await app.inject({ method: 'GET', url: '/v1/sandboxes', headers });
      assert.equal(r.statusCode, 401);
      assert.equal(r.json().error.code, 'ERR_UNAUTHORIZED');
    }
  });

  test('a body that breaks the schema is refused with 400, a stable code and one line', async () => {
    for (const body of [
      { image: 5 },
      {},
      { image: 'busybox', cpus: 0 },
      { image: 'busybox', extra: true },
      { image: 'busybox', env: { 'A=B': 'x' } },
      { image: '--src-creds=a:b' },
    ]) {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/sandboxes',
        headers: authorized,
        payload: body,
      });
      assert.equal(r.statusCode, 400, JSON.stringify(body));
      const { error } = r.json();
      assert.equal(error.code, 'ERR_VALIDATION');
      assert.doesNotMatch(error.message, /\n/);
    }
  });

  test('a JSON body over the limit is refused with 413', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/sandboxes',
      headers: { ...authorized, 'content-type': 'application/json' },
      payload: JSON.stringify({ image: 'busybox', metadata: { a: 'x'.repeat(MAX_JSON_BODY_BYTES) } }),
    });
    assert.equal(r.statusCode, 413);
    assert.equal(r.json().error.code, 'ERR_TOO_LARGE');
  });

  test('an unknown sandbox is 404, an unknown route 404 with another code', async () => {
    const sandbox = await app.inject({
      method: 'GET',
      url: '/v1/sandboxes/sb-0123456789abcdef',
      headers: authorized,
    });
    assert.equal(sandbox.statusCode, 404);
    assert.equal(sandbox.json().error.code, 'ERR_NOT_FOUND');
    const route = await app.inject({ method: 'GET', url: '/v2/nothing', headers: authorized });
    assert.equal(route.statusCode, 404);
    assert.equal(route.json().error.code, 'ERR_ROUTE');
  });

  test('a relative path in the files API is refused before reaching a sandbox', async () => {
    const r = await app.inject({
      method: 'GET',
      url: '/v1/sandboxes/sb-0123456789abcdef/files?path=etc/passwd',
      headers: authorized,
    });
    assert.equal(r.statusCode, 400);
    assert.equal(r.json().error.code, 'ERR_VALIDATION');
  });
});
