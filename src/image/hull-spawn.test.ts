import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { guestImageSourceDir } from '../paths.js';

/**
 * The guest's hull-spawn (guest/image/hull-spawn.c), compiled here as the image build does,
 * refusing what its command line must not hold before it touches anything: each refusal is
 * one line on descriptor 3 and exit status 1.
 */
let dir: string;
let program: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hull-spawn-test-'));
  program = join(dir, 'hull-spawn');
  const cc = spawnSync(
    'cc',
    ['-static', '-Os', '-Wall', '-Werror', '-o', program, join(guestImageSourceDir(), 'hull-spawn.c')],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(cc.status, 0, cc.stderr);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs hull-spawn with `args`; its report descriptor 3 is a pipe read here. */
function spawnWith(args: string[]): { status: number | null; report: string } {
  const run = spawnSync(program, args, {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { status: run.status, report: String(run.output[3] ?? '') };
}

test('hull-spawn refuses a bad command line in one line, exit 1', () => {
  const valid = ['-p', '2', '-c', '/sys/fs/cgroup/x'];
  const cases: [string, string[], RegExp][] = [
    ['no pid', ['-c', '/x', '--', 'true'], /-p and -c are required/],
    ['pid 1 (not a container init)', ['-p', '1', '-c', '/x', '--', 'true'], /-p:/],
    ['a pid with letters', ['-p', '12x', '-c', '/x', '--', 'true'], /-p:/],
    ['a relative cgroup', ['-p', '2', '-c', 'x', '--', 'true'], /-c:/],
    ['a negative uid', [...valid, '-u', '-1', '--', 'true'], /-u:/],
    ['a uid past 2^32-2', [...valid, '-u', '4294967295', '--', 'true'], /-u:/],
    ['65 groups', [...valid, '-G', Array(65).fill('1').join(','), '--', 'true'], /-G:/],
    ['a umask past 0777', [...valid, '-m', '1000', '--', 'true'], /-m:/],
    ['a relative cwd', [...valid, '-d', 'tmp', '--', 'true'], /-d:/],
    ['a capability mask past 64 bits', [...valid, '-B', '1ffffffffffffffff', '--', 'true'], /hex mask/],
    ['a resource past RLIMIT_NLIMITS', [...valid, '-r', '16,1,1', '--', 'true'], /-r:/],
    ['a limit without its hard value', [...valid, '-r', '7,1', '--', 'true'], /-r:/],
    ['17 limits', [...valid, ...Array(17).fill(['-r', '7,1,1']).flat(), '--', 'true'], /-r:/],
    ['no program', [...valid, '--'], /no program/],
  ];
  for (const [what, args, message] of cases) {
    const { status, report } = spawnWith(args);
    assert.equal(status, 1, what);
    assert.match(report, message, what);
    assert.equal(report.split('\n').length, 2, `${what}: one line`);
  }
});

test('hull-spawn without its report descriptor does nothing', () => {
  const run = spawnSync(program, ['-p', '2', '-c', '/x', '--', 'true'], { stdio: 'ignore' });
  assert.equal(run.status, 1);
});

/**
 * Server mode as the agent drives it (a request of NUL-ended strings with three descriptors, a
 * report per request, each under its id), asked from Python, which passes descriptors
 * (socket.send_fds) where Node cannot.
 */
const SERVER_CLIENT = String.raw`
import json, os, socket, struct, subprocess, sys
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
server_args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else []
server = subprocess.Popen([sys.argv[1], '--serve', *server_args], pass_fds=[3] if theirs.fileno() == 3 else [],
    preexec_fn=lambda: os.dup2(theirs.fileno(), 3), close_fds=False)
theirs.close()
out_r, out_w = os.pipe()
requests = json.loads(sys.argv[2])
for rid, args in requests.items():
    body = b''.join(s.encode() + b'\0' for s in [rid, '0', *args])
    socket.send_fds(ours, [struct.pack('=I', len(body))], [0, out_w, 2])
    ours.sendall(body)
os.close(out_w)
reports, buffer = {}, b''
while len(reports) < len(requests):
    chunk = ours.recv(4096)
    if not chunk: break
    buffer += chunk
    while b'\n' in buffer:
        line, buffer = buffer.split(b'\n', 1)
        rid, _, said = line.decode().partition(' ')
        reports[rid] = said
ours.close()
output = os.read(out_r, 4096).decode()
print(json.dumps({'reports': reports, 'output': output, 'status': server.wait(timeout=10)}))
`;

/** Asks a server started with `serverArgs` for `requests`; its reports and the output sent. */
function askServer(
  requests: Record<string, string[]>,
  serverArgs: string[] = [],
): { reports: Record<string, string>; output: string; status: number } {
  const run = spawnSync(
    'python3',
    ['-c', SERVER_CLIENT, program, JSON.stringify(requests), JSON.stringify(serverArgs)],
    { encoding: 'utf8', timeout: 20_000 },
  );
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout);
}

/** Python's own executable (an ELF program, where `python3` may be a script that starts it). */
function realPython(): string {
  return spawnSync('python3', ['-c', 'import os, sys; print(os.path.realpath(sys.executable))'], {
    encoding: 'utf8',
  }).stdout.trim();
}

test("hull-spawn's server starts a --plain program and says its pid, or in one line why not", () => {
  const requests = {
    started: ['--plain', '/bin/sh', '-c', 'echo $$'],
    missing: ['--plain', '/nonexistent/program'],
    relative: ['--plain', 'sh', '-c', 'true'],
  };
  const { reports, output, status } = askServer(requests);
  assert.match(reports.started ?? '', /^\d+$/, 'a started program is reported by its pid');
  assert.equal(output.trim(), reports.started, 'the pid said is the program that ran, with the stdout sent');
  assert.equal(reports.missing, 'exec /nonexistent/program: No such file or directory');
  assert.equal(reports.relative, 'hull-spawn: --plain: an absolute program path');
  assert.equal(status, 0, 'the server ends when the agent closes its end');
});

test("hull-spawn's server starts a --sealed program from a copy sealed as crun requires to skip its own", () => {
  // An ELF program that can say what it runs from: Python itself (a script's interpreter would be
  // the program instead). F_GET_SEALS is 1034; crun takes 15 (seal, shrink, grow, write).
  const python = realPython();
  const probe = [
    '-c',
    [
      'import fcntl, os',
      "fd = os.open('/proc/self/exe', os.O_RDONLY)",
      'try: seals = fcntl.fcntl(fd, 1034)',
      'except OSError: seals = -1',
      "print(os.readlink('/proc/self/exe'), seals)",
    ].join('\n'),
  ];
  const { reports, output, status } = askServer({ sealed: ['--plain', python, ...probe] }, [
    '--sealed',
    python,
  ]);
  assert.match(reports.sealed ?? '', /^\d+$/, JSON.stringify(reports));
  assert.equal(output.trim(), `/memfd:${python} (deleted) 15`);
  assert.equal(status, 0);

  const unsealed = askServer({ plain: ['--plain', python, ...probe] });
  assert.equal(unsealed.output.trim(), `${python} -1`, 'a program not named --sealed runs from its file');
});

test("hull-spawn's server refuses a --sealed program that is not an absolute path, in one line", () => {
  for (const args of [['--sealed', 'crun'], ['--sealed'], ['--other', '/x']]) {
    const run = spawnSync(program, ['--serve', ...args], {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(run.status, 1, args.join(' '));
    assert.match(String(run.output[3]), /^hull-spawn: --serve \[--sealed FILE\]/, args.join(' '));
  }
});

/**
 * A process that reopened the sealed copy for writing (through /proc/PID/exe of a program started
 * from it, as CVE-2019-5736's attack gets its handle, here as root) makes every exec of the copy
 * fail with ETXTBSY while it holds it: the server then starts the program's own file.
 */
const HELD_COPY_CLIENT = String.raw`
import json, os, socket, struct, subprocess, sys, time
python = sys.argv[2]
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
server = subprocess.Popen([sys.argv[1], '--serve', '--sealed', python],
    preexec_fn=lambda: os.dup2(theirs.fileno(), 3), close_fds=False)
theirs.close()
buffer = b''
def ask(rid, args, stdout):
    global buffer
    body = b''.join(s.encode() + b'\0' for s in [rid, '0', '--plain', *args])
    socket.send_fds(ours, [struct.pack('=I', len(body))], [0, stdout, 2])
    ours.sendall(body)
    while b'\n' not in buffer:
        buffer += ours.recv(4096)
    line, buffer = buffer.split(b'\n', 1)
    return line.decode().partition(' ')[2]
def state(pid):
    try:
        with open(f'/proc/{pid}/stat') as f: return f.read().rsplit(')', 1)[1].split()[0]
    except FileNotFoundError: return 'gone'
first = ask('a', [python, '-c', 'import time; time.sleep(1)'], 1)
handle = os.open(f'/proc/{first}/exe', os.O_PATH)
deadline = time.monotonic() + 10
while state(first) not in ('Z', 'X', 'gone') and time.monotonic() < deadline: time.sleep(0.02)
try:
    held = os.open(f'/proc/self/fd/{handle}', os.O_RDWR)
    reopened = 'yes'
except OSError as e:
    reopened = e.strerror
out_r, out_w = os.pipe()
second = ask('b', [python, '-c', "import os; print(os.readlink('/proc/self/exe'))"], out_w)
os.close(out_w)
output = os.read(out_r, 4096).decode()
ours.close()
print(json.dumps({'reopened': reopened, 'second': second, 'output': output, 'status': server.wait(timeout=10)}))
`;

test("hull-spawn's server still starts a --sealed program while its copy is held open for writing", () => {
  const python = realPython();
  const run = spawnSync('python3', ['-c', HELD_COPY_CLIENT, program, python], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const { reopened, second, output, status } = JSON.parse(run.stdout) as Record<string, string | number>;
  // As root the reopen succeeds (the copy's mode 0555 keeps others out); the seals refuse writes.
  if (process.getuid?.() === 0) assert.equal(reopened, 'yes');
  assert.match(String(second), /^\d+$/, `the second start is reported by its pid, not ${second}`);
  assert.equal(String(output).trim(), python, 'the program ran from its own file');
  assert.equal(status, 0);
});
