import { describe, expect, it } from 'vitest'
import { applyMessage, applyRead, mergeList, ordered, type Summaries } from '../src/core/conversations'
import { message, summary } from './fakes'

const DM = 'dm:alice:bob'

describe('unread counts', () => {
  it('counts messages others sent after the read mark, once each', () => {
    const summaries: Summaries = {}
    expect(applyMessage(summaries, message(DM, 1, 'bob'), 'alice')).toBe(true)
    expect(applyMessage(summaries, message(DM, 2, 'bob'), 'alice')).toBe(true)
    // a replay (sync after reconnect, a second copy) is not counted again
    expect(applyMessage(summaries, message(DM, 2, 'bob'), 'alice')).toBe(false)
    expect(summaries[DM].unread).toBe(2)
    expect(summaries[DM].last_seq).toBe(2)
  })

  it('does not count own messages, system entries, recalls or edits', () => {
    const summaries: Summaries = {}
    applyMessage(summaries, message(DM, 1, 'alice'), 'alice')
    applyMessage(summaries, message(DM, 2, 'bob', '', { kind: 'recall', target: 1 }), 'alice')
    applyMessage(summaries, message('group:g', 1, 'bob', '', { kind: 'system', event: 'created', users: ['bob'] }), 'alice')
    expect(summaries[DM].unread).toBe(0)
    expect(summaries['group:g'].unread).toBe(0)
  })

  it('does not count what is read while viewing the conversation', () => {
    const summaries: Summaries = {}
    applyMessage(summaries, message(DM, 1, 'bob'), 'alice', { viewing: true })
    expect(summaries[DM].unread).toBe(0)
  })

  it('a read mark from any device clears or recounts the badge', () => {
    const summaries: Summaries = {}
    for (let seq = 1; seq <= 4; seq++) applyMessage(summaries, message(DM, seq, 'bob'), 'alice')
    expect(applyRead(summaries, DM, 2, () => 2)).toBe('changed')
    expect(summaries[DM].unread).toBe(2)
    expect(applyRead(summaries, DM, 3)).toBe('refetch')
    expect(applyRead(summaries, DM, 4)).toBe('changed')
    expect(summaries[DM].unread).toBe(0)
    // an older mark changes nothing
    expect(applyRead(summaries, DM, 1)).toBe('unchanged')
  })

  it('the list from the server does not overwrite newer local state', () => {
    const summaries: Summaries = {}
    for (let seq = 1; seq <= 3; seq++) applyMessage(summaries, message(DM, seq, 'bob'), 'alice')
    mergeList(summaries, [summary(DM, { last_seq: 2, unread: 2, last_ts: 1002 })])
    expect(summaries[DM].unread).toBe(3)
    mergeList(summaries, [summary(DM, { last_seq: 5, unread: 5, last_ts: 1005 })])
    expect(summaries[DM].unread).toBe(5)
  })
})

describe('ordering and previews', () => {
  it('orders by last activity and previews the last message, recalled or edited', () => {
    const summaries: Summaries = {}
    applyMessage(summaries, message('dm:a:b', 1, 'b', 'old', { ts: 10 }), 'a')
    applyMessage(summaries, message('group:g', 1, 'c', 'new', { ts: 20 }), 'a')
    expect(ordered(summaries).map((s) => s.conversation)).toEqual(['group:g', 'dm:a:b'])
    applyMessage(summaries, message('dm:a:b', 2, 'b', '你好 👋', { ts: 30 }), 'a')
    expect(ordered(summaries)[0].conversation).toBe('dm:a:b')
    applyMessage(summaries, message('dm:a:b', 3, 'b', '你好呀', { ts: 31, kind: 'edit', target: 2 }), 'a')
    expect(summaries['dm:a:b'].last_message?.text).toBe('你好呀')
    applyMessage(summaries, message('dm:a:b', 4, 'b', '', { ts: 32, kind: 'recall', target: 2 }), 'a')
    expect(summaries['dm:a:b'].last_message?.recalled).toBe(true)
  })

  it('hides a group one has left', () => {
    const summaries: Summaries = {}
    applyMessage(summaries, message('group:g', 1, 'b', '', { kind: 'system', event: 'added', users: ['a'] }), 'a')
    expect(ordered(summaries)).toHaveLength(1)
    applyMessage(summaries, message('group:g', 2, 'a', '', { kind: 'system', event: 'left', user: 'a' }), 'a')
    expect(ordered(summaries)).toHaveLength(0)
  })
})
