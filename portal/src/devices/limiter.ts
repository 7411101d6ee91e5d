/**
 * At most `max` tasks at once, the rest queued in order: a page of 50
 * devices asks for 50 heat maps, and the browser and the API should not
 * get them all at the same moment.
 */

export interface Limiter {
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function createLimiter(max: number): Limiter {
  let running = 0;
  const waiting: (() => void)[] = [];

  function next(): void {
    if (running >= max) return;
    const start = waiting.shift();
    if (start) start();
  }

  return {
    run<T>(task: () => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        waiting.push(() => {
          running += 1;
          task()
            .then(resolve, reject)
            .finally(() => {
              running -= 1;
              next();
            });
        });
        next();
      });
    },
  };
}

/** The limiter the devices table's heat maps share. */
export const heatMapLimiter = createLimiter(4);
