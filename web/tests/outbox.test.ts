import { describe, expect, it } from 'vitest'
import { Outbox } from '../src/core/outbox'
import { MemoryStorage } from './fakes'

describe('Outbox', () => {
  it('resends with the same client id after a disconnect and after a retry', () => {
    const outbox = new Outbox()
    const item = outbox.add('dm:a:b', 'hi', 1)
    expect(outbox.due()).toEqual([item])
    outbox.sent(item.clientMsgId, 2)
    expect(outbox.due()).toEqual([])
    outbox.disconnected()
    expect(outbox.due()[0].clientMsgId).toBe(item.clientMsgId)
    outbox.sent(item.clientMsgId, 3)
    outbox.failed(item.clientMsgId, 'boom')
    expect(outbox.due()).toEqual([])
    outbox.retry(item.clientMsgId)
    expect(outbox.due()[0].clientMsgId).toBe(item.clientMsgId)
    expect(outbox.acked(item.clientMsgId)?.text).toBe('hi')
    expect(outbox.due()).toEqual([])
  })

  it('reports sends that got no ack in time', () => {
    const outbox = new Outbox()
    const item = outbox.add('dm:a:b', 'hi', 0)
    outbox.sent(item.clientMsgId, 1_000)
    expect(outbox.overdue(5_000, 10_000)).toEqual([])
    expect(outbox.overdue(12_000, 10_000)).toEqual([item])
  })

  it('keeps unacked messages across a reload', () => {
    const storage = new MemoryStorage()
    const first = new Outbox(storage)
    const item = first.add('dm:a:b', '你好 🎉', 1)
    const second = new Outbox(storage)
    const restored = second.load()
    expect(restored.map((r) => [r.clientMsgId, r.text])).toEqual([[item.clientMsgId, '你好 🎉']])
    second.acked(item.clientMsgId)
    expect(new Outbox(storage).load()).toEqual([])
  })

  it('picks distinct client ids', () => {
    const outbox = new Outbox()
    const ids = new Set(Array.from({ length: 100 }, () => outbox.add('c', 't', 0).clientMsgId))
    expect(ids.size).toBe(100)
  })
})
