import { describe, expect, it } from 'vitest'
import { InboxCursor } from '../src/core/inbox'

describe('InboxCursor', () => {
  it('applies the next seq, drops duplicates and reports gaps', () => {
    const cursor = new InboxCursor(4)
    expect(cursor.classify(3)).toBe('duplicate')
    expect(cursor.classify(4)).toBe('duplicate')
    expect(cursor.classify(5)).toBe('apply')
    cursor.advance(5)
    expect(cursor.classify(7)).toBe('gap')
    expect(cursor.last).toBe(5)
  })

  it('remembers a push beyond the cursor so that sync goes on', () => {
    const cursor = new InboxCursor(1)
    cursor.classify(9)
    expect(cursor.behind()).toBe(true)
    for (let seq = 2; seq <= 9; seq++) cursor.advance(seq)
    expect(cursor.behind()).toBe(false)
  })

  it('confirms only what moved forward', () => {
    const cursor = new InboxCursor(3)
    expect(cursor.toConfirm()).toBeNull()
    cursor.advance(6)
    expect(cursor.toConfirm()).toBe(6)
    cursor.confirmedAt(6)
    expect(cursor.toConfirm()).toBeNull()
  })
})
