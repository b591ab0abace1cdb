// Reconnect delays: exponential with full jitter, so that a restarted server is
// not hit by every client at the same instant.

export interface BackoffOptions {
  /** First delay (ms): short, since most drops are brief. */
  base: number
  /** Cap (ms): a client keeps trying at least this often. */
  max: number
  random?: () => number
}

export class Backoff {
  attempt = 0
  private readonly options: Required<BackoffOptions>

  constructor(options: BackoffOptions = { base: 500, max: 15_000 }) {
    this.options = { random: Math.random, ...options }
  }

  /** The delay before the next attempt, and count it. */
  next(): number {
    const { base, max, random } = this.options
    const ceiling = Math.min(max, base * 2 ** this.attempt)
    this.attempt += 1
    // Half fixed, half random: never zero, never above the ceiling.
    return Math.round(ceiling / 2 + random() * (ceiling / 2))
  }

  reset(): void {
    this.attempt = 0
  }
}
