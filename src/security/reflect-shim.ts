// @peculiar/x509 2.x loads tsyringe, which refuses to start without the Reflect metadata API (the reflect-metadata
// package, not among our dependencies). It only stores and reads plain metadata, so this small map is enough; a real
// polyfill loaded first takes precedence. Import this module before '@peculiar/x509'.

type Target = object;
const store = new WeakMap<Target, Map<unknown, unknown>>();

interface ReflectMetadata {
  getMetadata?: (key: unknown, target: Target) => unknown;
  getOwnMetadata?: (key: unknown, target: Target) => unknown;
  defineMetadata?: (key: unknown, value: unknown, target: Target) => void;
}

const reflect = Reflect as typeof Reflect & ReflectMetadata;
if (reflect.getMetadata === undefined) {
  reflect.getOwnMetadata = (key, target) => store.get(target)?.get(key);
  reflect.defineMetadata = (key, value, target) => {
    const own = store.get(target) ?? new Map<unknown, unknown>();
    own.set(key, value);
    store.set(target, own);
  };
  reflect.getMetadata = (key, target) => {
    // Metadata is inherited along the prototype chain, as reflect-metadata does.
    for (let t: Target | null = target; t !== null; t = Object.getPrototypeOf(t) as Target | null) {
      const own = store.get(t);
      if (own?.has(key) === true) return own.get(key);
    }
    return undefined;
  };
}

export {};
