import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentClient } from '../agent/client.js';
import { HullError, messageOf } from '../errors.js';
import type { Hypervisor, Vm, VmConfig } from '../hypervisor/hypervisor.js';
import { consoleCauseOrLastLine } from '../image/console-cause.js';
import { logger } from '../log.js';
import { makePlaceholderDisks } from '../storage/rootfs-disks.js';
import { deadlineSignal } from '../util/deadline.js';
import { TemplateMemory } from './memory.js';
import {
  prepareTemplateDir,
  removeTemplate,
  stateFile,
  type TemplateRecord,
  templateDir,
  writeRecord,
} from './store.js';

export interface TemplateBuild {
  key: string;
  /** The template's VM, as templateConfigOf gives it (its own directories are made here). */
  config: Omit<VmConfig, 'id' | 'runDir' | 'shareDir'>;
  hypervisor: Hypervisor;
  /** Recorded for `hull template list`. */
  describe: Pick<TemplateRecord, 'accel' | 'cpuModel' | 'imageHash'>;
  timeoutMs: number;
  signal: AbortSignal;
  /**
   * A saved VM's state (devices and RAM, see src/snapshot/) to load into the template's memory
   * instead of booting: a running sandbox's snapshot made into a template its forks clone.
   */
  loadFrom?: { fd: number; streamIdsFrom: number };
}

/**
 * Makes a template: boots a VM whose RAM is a held memfd (mapped shared), waits until its agent
 * answers, pauses it and saves its device state, stops it, and seals the memory. The guest
 * has mounted nothing of the host's (the agent mounts the share at the first container), so
 * each clone brings its own share. Whatever fails leaves nothing: no holder, no files.
 */
export async function buildTemplate(build: TemplateBuild): Promise<TemplateRecord> {
  const { key, config } = build;
  const log = logger('template');
  const started = Date.now();
  const deadline = deadlineSignal(
    build.timeoutMs,
    () =>
      new HullError(
        'ERR_TEMPLATE',
        `making the VM template took over ${build.timeoutMs / 1000}s: is the host overloaded? HULL_TEMPLATE=off boots sandboxes instead`,
      ),
    build.signal,
  );
  const signal = deadline.signal;
  let memory: TemplateMemory | undefined;
  let vm: Vm | undefined;
  const boot = join(templateDir(key), 'boot');
  try {
    await prepareTemplateDir(key);
    await mkdir(join(boot, 'share'), { recursive: true, mode: 0o700 });
    memory = await TemplateMemory.create(key, config.memoryMiB * 2 ** 20, templateDir(key), signal);
    const memoryFile = await open(memory.path, 'r+');
    const state = await open(stateFile(key), 'w', 0o600);
    try {
      try {
        vm = await build.hypervisor.start(
          {
            ...config,
            rootfsDisks: config.rootfsDisks && (await makePlaceholderDisks(boot)),
            id: `template-${key}`,
            runDir: boot,
            shareDir: join(boot, 'share'),
            template: {
              role: 'template',
              memoryFd: memoryFile.fd,
              stateFd: state.fd,
              loadFd: build.loadFrom?.fd,
            },
          },
          signal,
        );
      } finally {
        await memoryFile.close();
      }
      // A template loaded from a saved VM is its saved self, paused: nothing to wait for.
      const agent = build.loadFrom ? undefined : new AgentClient(vm.agentChannel);
      try {
        await agent?.waitReady(signal);
      } catch (err) {
        const said = consoleCauseOrLastLine(await readFile(vm.consoleLog, 'utf8').catch(() => ''));
        throw new HullError(
          'ERR_TEMPLATE',
          `the template's guest did not answer: ${messageOf(err)} (${said})`,
          {
            cause: err,
          },
        );
      }
      // Where the guest's kernel keeps its boot id is asked now, so that every clone's agent has
      // it at hand when a running clone is saved for copies (a fork, a snapshot): reading the
      // kernel's symbols takes the guest a few hundred ms under emulation, paid once here
      // rather than in each fork. A guest that cannot say is asked again at each save.
      await agent?.bootIdAddress(signal).catch(() => undefined);
      await vm.saveTemplate(signal);
      agent?.close();
    } finally {
      await state.close();
    }
    await vm.stop();
    await memory.seal(signal);
    const record: TemplateRecord = {
      key,
      vcpus: config.vcpus,
      memoryMiB: config.memoryMiB,
      nics: config.network?.nics.length ?? 0,
      ...build.describe,
      vmm: await build.hypervisor.identity(),
      memory: memory.held,
      builtAt: new Date().toISOString(),
      buildMs: Date.now() - started,
      stateBytes: (await stat(stateFile(key))).size,
      ...(build.loadFrom ? { streamIdsFrom: build.loadFrom.streamIdsFrom } : {}),
    };
    await writeRecord(record);
    log.debug({ key, ms: record.buildMs, stateBytes: record.stateBytes }, 'VM template made');
    return record;
  } catch (err) {
    memory?.discard();
    await vm?.stop();
    await removeTemplate(key);
    throw err instanceof HullError
      ? err
      : new HullError('ERR_TEMPLATE', `making the VM template failed: ${messageOf(err)}`, { cause: err });
  } finally {
    deadline.dispose();
    await rm(boot, { recursive: true, force: true });
  }
}
