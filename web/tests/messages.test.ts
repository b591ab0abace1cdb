import { describe, expect, it } from 'vitest'
import {
  acknowledge,
  addPending,
  claimPending,
  countUnreadAfter,
  emptyLog,
  merge,
  mergePage,
  setPendingStatus,
  visible,
} from '../src/core/messages'
import { message } from './fakes'

const DM = 'dm:alice:bob'

describe('merging', () => {
  it('keeps entries ordered by seq and drops duplicates from any source', () => {
    const log = emptyLog(DM)
    merge(log, message(DM, 3, 'bob'))
    merge(log, message(DM, 1, 'bob'))
    expect(merge(log, message(DM, 3, 'bob'))).toBe('duplicate')
    mergePage(log, [message(DM, 2, 'alice'), message(DM, 1, 'bob')], false)
    expect(log.items.map((i) => i.seq)).toEqual([1, 2, 3])
    expect(log.oldest).toBe(1)
    expect(log.hasMoreBefore).toBe(false)
  })

  it('pages backward: the next page starts before the oldest seq', () => {
    const log = emptyLog(DM)
    mergePage(log, [message(DM, 100, 'bob'), message(DM, 99, 'bob')], true)
    expect(log.oldest).toBe(99)
    mergePage(log, [message(DM, 98, 'bob')], true)
    expect(log.items[0].seq).toBe(98)
  })

  it('applies recalls and edits to their target, idempotently', () => {
    const log = emptyLog(DM)
    merge(log, message(DM, 1, 'bob', 'hello'))
    merge(log, message(DM, 2, 'bob', 'hello!', { kind: 'edit', target: 1, ts: 2000 }))
    expect(log.items[0].message.text).toBe('hello!')
    merge(log, message(DM, 3, 'bob', '', { kind: 'recall', target: 1 }))
    merge(log, message(DM, 2, 'bob', 'hello!', { kind: 'edit', target: 1, ts: 2000 }))
    expect(log.items[0].message.recalled).toBe(true)
    expect(log.items).toHaveLength(1)
    // a stale copy from an old page does not undo the recall
    merge(log, message(DM, 1, 'bob', 'hello'))
    expect(log.items[0].message.recalled).toBe(true)
  })
})

describe('pending messages', () => {
  it('pending -> sent when the ack comes first', () => {
    const log = emptyLog(DM)
    addPending(log, 'c1', message(DM, 0, 'alice', '第一'))
    expect(visible(log).map((i) => i.status)).toEqual(['pending'])
    acknowledge(log, 'c1', { seq: 5, id: 'x', ts: 9 })
    merge(log, message(DM, 5, 'alice', '第一'))
    expect(visible(log).map((i) => [i.seq, i.status])).toEqual([[5, 'sent']])
  })

  it('no duplicate when the pushed copy comes before the ack', () => {
    const log = emptyLog(DM)
    addPending(log, 'c1', message(DM, 0, 'alice', 'hi'))
    merge(log, message(DM, 5, 'alice', 'hi'))
    acknowledge(log, 'c1', { seq: 5, id: 'x', ts: 9 })
    expect(visible(log)).toHaveLength(1)
    expect(visible(log)[0].clientMsgId).toBe('c1')
  })

  it('a live copy that beats the ack takes the pending item\'s place', () => {
    const log = emptyLog(DM)
    addPending(log, 'c1', message(DM, 0, 'alice', 'same'))
    addPending(log, 'c2', message(DM, 0, 'alice', 'same'))
    expect(claimPending(log, message(DM, 5, 'alice', 'same'))).toBe('c1')
    expect(visible(log).map((i) => [i.seq, i.status])).toEqual([[5, 'sent'], [null, 'pending']])
    // the acks, in any order, change nothing more than the seqs they carry
    acknowledge(log, 'c2', { seq: 6, id: 'y', ts: 9 })
    acknowledge(log, 'c1', { seq: 5, id: 'x', ts: 9 })
    expect(visible(log).map((i) => i.seq)).toEqual([5, 6])
    // someone else's message with the same text is not ours
    addPending(log, 'c3', message(DM, 0, 'alice', 'same'))
    expect(claimPending(log, message(DM, 7, 'bob', 'same'))).toBeUndefined()
  })

  it('failed keeps the item in place for a retry', () => {
    const log = emptyLog(DM)
    addPending(log, 'c1', message(DM, 0, 'alice', 'hi'))
    setPendingStatus(log, 'c1', 'failed', 'rate limited')
    expect(visible(log)[0]).toMatchObject({ status: 'failed', error: 'rate limited', clientMsgId: 'c1' })
  })
})

describe('countUnreadAfter', () => {
  it('counts only when every entry after the mark is loaded', () => {
    const log = emptyLog(DM)
    mergePage(log, [1, 2, 3, 4].map((s) => message(DM, s, s === 3 ? 'alice' : 'bob')), false)
    expect(countUnreadAfter(log, 1, 'alice', 4)).toBe(2)
    expect(countUnreadAfter(log, 1, 'alice', 6)).toBeNull()
    const partial = emptyLog(DM)
    mergePage(partial, [message(DM, 10, 'bob')], true)
    expect(countUnreadAfter(partial, 2, 'alice', 10)).toBeNull()
  })
})
