import { Duplex, PassThrough } from 'node:stream';

/** Two connected in-memory byte streams, as the two ends of a socket are: for ttRPC tests. */
export function streamPair(): [Duplex, Duplex] {
  const aToB = new PassThrough();
  const bToA = new PassThrough();
  const ends: [Duplex, Duplex] = [
    Duplex.from({ readable: bToA, writable: aToB }),
    Duplex.from({ readable: aToB, writable: bToA }),
  ];
  // Destroying a duplexified pair reports AbortError; the tests close ends on purpose.
  for (const end of ends) end.on('error', () => {});
  return ends;
}
