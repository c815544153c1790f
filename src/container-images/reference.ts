import { HullError } from '../errors.js';

/**
 * A container image reference, checked before it reaches skopeo: `[registry/]path[:tag][@digest]`
 * in the grammar of the distribution spec, so that nothing a user writes becomes an option or
 * a transport of its own (`docker://` is added here, never taken from input).
 */
export interface ImageReference {
  /** As the user wrote it, normalized with the default registry and tag. */
  canonical: string;
  registry: string;
  /** Plain HTTP and no certificate check: only a registry on this machine, as Docker allows. */
  insecure: boolean;
}

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REFERENCE = new RegExp(
  `^(?:(?<registry>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?)/)?(?<path>${COMPONENT}(?:/${COMPONENT})*)(?::(?<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?<digest>sha256:[a-f0-9]{64}))?$`,
);

export function parseImageReference(raw: string): ImageReference {
  const match = raw.length <= 512 ? REFERENCE.exec(raw) : null;
  if (!match?.groups) {
    throw new HullError(
      'ERR_CONFIG',
      `${JSON.stringify(raw.slice(0, 80))} is not an image reference: write it as registry/name:tag (e.g. docker.io/library/busybox:latest)`,
    );
  }
  let { registry, path } = match.groups as { registry?: string; path: string };
  const { tag, digest } = match.groups;
  // "busybox" or "library/busybox": a first component that is no host is part of the path.
  if (registry && !/[.:]/.test(registry) && registry !== 'localhost') {
    path = `${registry}/${path}`;
    registry = undefined;
  }
  registry ??= 'docker.io';
  if (registry === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  const suffix = digest ? `${tag ? `:${tag}` : ''}@${digest}` : `:${tag ?? 'latest'}`;
  const host = registry.replace(/:[0-9]+$/, '');
  return {
    canonical: `${registry}/${path}${suffix}`,
    registry,
    insecure: host === 'localhost' || host === '127.0.0.1',
  };
}
