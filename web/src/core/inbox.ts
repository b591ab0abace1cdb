// The device's place in its inbox (docs/protocol.md, "The delivery contract").
//
// `last` is the highest inbox seq processed. A pushed event at or below it is a
// duplicate; one more than `last + 1` means something was missed, so the
// device syncs from `last`. Sync replies are processed in order; afterwards,
// if a push showed a seq beyond what the sync reached, sync again.

export type Verdict = 'apply' | 'duplicate' | 'gap'

export class InboxCursor {
  /** Highest inbox seq processed. */
  last: number
  /** Highest inbox seq seen in any push (processed or not). */
  seen: number
  /** Processed but not yet confirmed to the server. */
  confirmed: number

  constructor(last = 0) {
    this.last = last
    this.seen = last
    this.confirmed = last
  }

  /** What to do with a pushed event. */
  classify(inboxSeq: number): Verdict {
    this.seen = Math.max(this.seen, inboxSeq)
    if (inboxSeq <= this.last) return 'duplicate'
    if (inboxSeq === this.last + 1) return 'apply'
    return 'gap'
  }

  /** Mark an event processed. */
  advance(inboxSeq: number): void {
    this.last = Math.max(this.last, inboxSeq)
    this.seen = Math.max(this.seen, this.last)
  }

  /** Sync must continue: a push showed events beyond what we processed. */
  behind(): boolean {
    return this.seen > this.last
  }

  /** The cursor to confirm, or null when the server already has it. */
  toConfirm(): number | null {
    return this.last > this.confirmed ? this.last : null
  }

  confirmedAt(cursor: number): void {
    this.confirmed = Math.max(this.confirmed, cursor)
  }

  /** Start over at `cursor` (fresh bootstrap or an inbox reset). */
  resetTo(cursor: number): void {
    this.last = cursor
    this.seen = cursor
    this.confirmed = Math.min(this.confirmed, cursor)
  }
}
