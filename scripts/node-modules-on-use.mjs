// An esbuild plugin of hull's build (scripts/bundle.mjs).
//
// Node modules loaded on first use rather than as the program loads, because each costs every
// hull command's start (about 23 ms for `node -e 0` here) whether or not the verb uses it:
//  - node:child_process (about 2 ms, with net, dgram and the streams it brings): commander
//    requires it as it loads, for verbs that are programs of their own, which hull has none of;
//  - node:fs/promises (1.3 ms, with readline and the fs watchers it loads): the light
//    program's modules import it for what `list` and `state` never do (locks, atomic writes).
// Each import of one gets an object whose properties, one per export, load the module when
// read. Getters rather than a Proxy: esbuild copies an imported CommonJS module's own
// properties (__toESM), as getters that read them at each use.
export const ON_USE = ['node:child_process', 'node:fs/promises'];
export const onUse = {
  name: 'node-modules-on-use',
  setup(b) {
    // A dynamic import() is on use already, and esbuild would make the module a chunk whose
    // only export is its default: left to Node.
    b.onResolve({ filter: /^node:/ }, (args) =>
      ON_USE.includes(args.path) && args.namespace !== 'on-use' && args.kind !== 'dynamic-import'
        ? { path: args.path, namespace: 'on-use' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'on-use' }, async (args) => {
      const names = Object.keys(await import(args.path)).filter((name) => name !== 'default');
      const getters = names.map(
        (name) =>
          `${JSON.stringify(name)}: { get: () => require(${JSON.stringify(args.path)})[${JSON.stringify(name)}], enumerable: true }`,
      );
      return {
        contents: `module.exports = Object.defineProperties({}, { ${getters.join(', ')} });`,
        loader: 'js',
      };
    });
  },
};
