import { spawn } from 'node:child_process';
import { HullError } from '../errors.js';
import type { Hook, Spec } from '../oci/spec.js';
import type { ContainerState } from './state.js';

export type HostHookPoint = 'createRuntime' | 'poststart' | 'poststop';

/**
 * Runs the hooks of one point on the host, in order, each with the container's state as JSON
 * on stdin (runtime-spec "State"), its own args, env and timeout. createRuntime also runs the
 * deprecated prestart hooks, which the spec places at the same moment.
 */
export async function runHostHooks(spec: Spec, point: HostHookPoint, state: ContainerState): Promise<void> {
  const hooks: Hook[] = [
    ...(point === 'createRuntime' ? (spec.hooks?.prestart ?? []) : []),
    ...(spec.hooks?.[point] ?? []),
  ];
  const stateJson = JSON.stringify({
    ociVersion: state.ociVersion,
    id: state.id,
    status: state.status,
    pid: state.pid,
    bundle: state.bundle,
    annotations: state.annotations,
  });
  for (const hook of hooks) await runHook(hook, point, stateJson);
}

/** Whether the spec has hooks for the createRuntime point (prestart included). */
export function hasCreateRuntimeHooks(spec: Spec): boolean {
  return Boolean(spec.hooks?.prestart?.length || spec.hooks?.createRuntime?.length);
}

function runHook(hook: Hook, point: string, stateJson: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const [argv0, ...args] = hook.args?.length ? hook.args : [hook.path];
    const child = spawn(hook.path, args, {
      argv0,
      env: Object.fromEntries(
        (hook.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
      ),
      stdio: ['pipe', 'ignore', 'pipe'],
      timeout: hook.timeout ? hook.timeout * 1000 : undefined,
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2000);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(stateJson);
    child.on('error', (err) =>
      reject(new HullError('ERR_CONFIG', `${point} hook ${hook.path} cannot run: ${err.message}`)),
    );
    child.on('exit', (code, signal) => {
      if (code === 0) return resolve();
      const why = signal
        ? `was killed by ${signal}${hook.timeout ? ' (timeout?)' : ''}`
        : `exited with ${code}`;
      reject(
        new HullError(
          'ERR_CONFIG',
          `${point} hook ${hook.path} ${why}: ${stderr.trim().split('\n').pop() ?? ''}`,
        ),
      );
    });
  });
}
