import { describe, expect, it } from 'vitest'
import { Backoff } from '../src/core/backoff'

describe('Backoff', () => {
  it('doubles up to the cap and never returns zero', () => {
    const backoff = new Backoff({ base: 500, max: 8_000, random: () => 0 })
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.next())).toEqual([250, 500, 1000, 2000, 4000, 4000])
  })

  it('stays within the ceiling with jitter, and starts over after reset', () => {
    const backoff = new Backoff({ base: 500, max: 8_000, random: () => 0.999 })
    backoff.next()
    backoff.next()
    expect(backoff.next()).toBeLessThanOrEqual(2000)
    backoff.reset()
    expect(backoff.next()).toBeLessThanOrEqual(500)
  })
})
