/** A list of callbacks told of each new value; `watch` returns the function that stops one. */
export function createWatchers<T>() {
  const watchers = new Set<(value: T) => void>();
  return {
    watch(watch: (value: T) => void): () => void {
      watchers.add(watch);
      return () => watchers.delete(watch);
    },
    notify(value: T): void {
      for (const watch of watchers) watch(value);
    },
  };
}
