/**
 * Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"): after n failures wait a random time in [min, min(max, min·2ⁿ)], so a fleet of bridges
 * does not reconnect to a restarted database in lockstep.
 */
export function backoffDelay(failures: number, minMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(failures, 30));
  return Math.round(minMs + random() * (ceiling - minMs));
}
