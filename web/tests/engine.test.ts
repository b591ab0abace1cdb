import { beforeEach, describe, expect, it } from 'vitest'
import { createState, Engine } from '../src/core/engine'
import { ordered } from '../src/core/conversations'
import { visible } from '../src/core/messages'
import { FakeApi, FakeSocket, ManualTimers, MemoryStorage, message, settle, summary } from './fakes'

const DM = 'dm:alice:bob'

function event(inboxSeq: number, seq: number, from = 'bob', text = `m${seq}`) {
  return { op: 'event', event: { inbox_seq: inboxSeq, type: 'message', message: message(DM, seq, from, text) } }
}

describe('Engine', () => {
  let api: FakeApi
  let timers: ManualTimers
  let sockets: FakeSocket[]
  let storage: MemoryStorage
  let engine: Engine

  const socket = () => sockets[sockets.length - 1]

  async function connect(head: number) {
    socket().open()
    expect(socket().sent[0]).toEqual({ op: 'auth', token: 'tok' })
    socket().deliver({ op: 'ready', user: 'alice', device: 'd1', cursor: 0, inbox_head: head, heartbeat: 30 })
    await settle()
  }

  /** Answer the latest `sync` with these events. */
  async function answerSync(events: Array<Record<string, unknown>>, hasMore = false) {
    const request = socket().last('sync')
    const last = events.length ? (events[events.length - 1] as { inbox_seq: number }).inbox_seq : (request.after as number)
    socket().deliver({ op: 'synced', ref: request.ref, events, cursor: last, has_more: hasMore, heads: {}, reset: false })
    await settle()
  }

  beforeEach(() => {
    api = new FakeApi()
    timers = new ManualTimers()
    sockets = []
    storage = new MemoryStorage()
    engine = new Engine(createState('alice'), {
      api,
      wsUrl: 'ws://test/ws',
      token: () => 'tok',
      openSocket: (url) => {
        const created = new FakeSocket(url)
        sockets.push(created)
        return created
      },
      timers,
      storage,
    })
  })

  it('bootstraps from the list and the inbox head, applying events pushed meanwhile once', async () => {
    api.list = [summary(DM, { last_seq: 2, unread: 2, last_ts: 1002 })]
    engine.start()
    socket().open()
    socket().deliver({ op: 'ready', user: 'alice', device: 'd1', cursor: 0, inbox_head: 5, heartbeat: 30 })
    // pushed before the list arrived: one already in it (inbox 5), one new (inbox 6)
    socket().deliver(event(5, 2))
    socket().deliver(event(6, 3))
    await settle()
    expect(engine.cursor.last).toBe(6)
    expect(engine.state.summaries[DM].unread).toBe(3)
    expect(socket().ops('sync')).toEqual([])
  })

  it('drops duplicate pushes and syncs on a gap', async () => {
    engine.start()
    await connect(0)
    socket().deliver(event(1, 1))
    socket().deliver(event(1, 1))
    expect(engine.state.summaries[DM].unread).toBe(1)
    socket().deliver(event(4, 4)) // 2 and 3 were missed
    expect(socket().last('sync')).toMatchObject({ after: 1 })
    await answerSync([event(2, 2).event, event(3, 3).event, event(4, 4).event])
    expect(engine.cursor.last).toBe(4)
    expect(engine.state.summaries[DM].unread).toBe(4)
  })

  it('after a reconnect, syncs from its cursor and fills the gap without duplicates', async () => {
    engine.start()
    await connect(0)
    await engine.open(DM)
    socket().deliver(event(1, 1))
    socket().drop(1001)
    expect(engine.state.interrupted).toBe(true)
    expect(engine.state.status).toBe('closed')
    timers.advance(1_000) // backoff
    expect(sockets).toHaveLength(2)
    socket().open()
    socket().deliver({ op: 'ready', user: 'alice', device: 'd1', cursor: 1, inbox_head: 3, heartbeat: 30 })
    await settle()
    expect(socket().last('sync')).toMatchObject({ after: 1 })
    await answerSync([event(1, 1).event, event(2, 2).event, event(3, 3).event])
    expect(engine.state.interrupted).toBe(false)
    expect(engine.log(DM).items.map((i) => i.seq)).toEqual([1, 2, 3])
    timers.advance(1_000)
    expect(socket().last('confirm')).toEqual({ op: 'confirm', cursor: 3 })
  })

  it('on an inbox reset, reloads the list and history, then continues from the cursor', async () => {
    api.histories[DM] = [message(DM, 1, 'bob'), message(DM, 2, 'bob')]
    engine.start()
    await connect(0)
    await engine.open(DM)
    socket().drop(1006)
    timers.advance(1_000)
    socket().open()
    socket().deliver({ op: 'ready', user: 'alice', device: 'd1', cursor: 0, inbox_head: 90, heartbeat: 30 })
    await settle()
    api.list = [summary(DM, { last_seq: 2, unread: 0, last_ts: 1002 })]
    const request = socket().last('sync')
    socket().deliver({ op: 'synced', ref: request.ref, events: [], cursor: 90, has_more: false, heads: {}, reset: true })
    await settle()
    expect(engine.cursor.last).toBe(90)
    expect(engine.log(DM).items.map((i) => i.seq)).toEqual([1, 2])
    expect(api.calls.filter((c) => c === 'conversations')).toHaveLength(2)
  })

  it('keeps syncing while the server says there is more', async () => {
    engine.start()
    await connect(0)
    socket().deliver(event(3, 3))
    await answerSync([event(1, 1).event, event(2, 2).event], true)
    expect(socket().last('sync')).toMatchObject({ after: 2 })
    await answerSync([event(3, 3).event])
    expect(engine.cursor.last).toBe(3)
  })

  it('sends pending -> sent, and resends with the same client id after a drop', async () => {
    engine.start()
    await connect(0)
    const id = engine.send(DM, '你好 🌏')!
    expect(visible(engine.log(DM))[0].status).toBe('pending')
    const first = socket().last('send')
    expect(first).toMatchObject({ conversation: DM, text: '你好 🌏', client_msg_id: id })
    socket().drop(1006)
    timers.advance(1_000)
    socket().open()
    socket().deliver({ op: 'ready', user: 'alice', device: 'd1', cursor: 0, inbox_head: 0, heartbeat: 30 })
    await settle()
    await answerSync([])
    const again = socket().last('send')
    expect(again.client_msg_id).toBe(id)
    socket().deliver({ op: 'ack', ref: again.ref, client_msg_id: id, conversation: DM, seq: 1, id: 'm1', ts: 5, duplicate: true })
    socket().deliver(event(1, 1, 'alice', '你好 🌏'))
    expect(visible(engine.log(DM)).map((i) => [i.seq, i.status])).toEqual([[1, 'sent']])
    expect(engine.state.summaries[DM].unread).toBe(0)
  })

  it('marks a refused send failed; retry reuses the client id', async () => {
    engine.start()
    await connect(0)
    const id = engine.send(DM, 'hi')!
    socket().deliver({ op: 'error', ref: socket().last('send').ref, code: 'forbidden', message: 'blocked' })
    expect(visible(engine.log(DM))[0]).toMatchObject({ status: 'failed', error: 'blocked' })
    engine.retry(id)
    expect(visible(engine.log(DM))[0].status).toBe('pending')
    expect(socket().ops('send').map((f) => f.client_msg_id)).toEqual([id, id])
  })

  it('shows a send as failed when no ack comes on an open socket', async () => {
    engine.start()
    await connect(0)
    engine.send(DM, 'hi')
    timers.advance(12_000)
    expect(visible(engine.log(DM))[0].status).toBe('failed')
  })

  it('sends a read mark for what arrives in the open conversation', async () => {
    engine.start()
    await connect(0)
    await engine.open(DM)
    socket().deliver(event(1, 1))
    expect(socket().last('read')).toMatchObject({ conversation: DM, seq: 1 })
    expect(engine.state.summaries[DM].unread).toBe(0)
  })

  it('a read mark from another tab of the same user clears the badge', async () => {
    engine.start()
    await connect(0)
    socket().deliver(event(1, 1))
    socket().deliver(event(2, 2))
    expect(ordered(engine.state.summaries)[0].unread).toBe(2)
    socket().deliver({ op: 'event', event: { inbox_seq: 3, type: 'read', conversation: DM, seq: 2 } })
    expect(engine.state.summaries[DM].unread).toBe(0)
  })

  it('opening a conversation loads the newest page, marks it read, and pages backward', async () => {
    api.histories[DM] = Array.from({ length: 120 }, (_, i) => message(DM, i + 1, 'bob'))
    api.list = [summary(DM, { last_seq: 120, unread: 7, last_ts: 1120 })]
    engine.start()
    await connect(0)
    await engine.open(DM)
    expect(engine.log(DM).items).toHaveLength(50)
    expect(socket().last('read')).toMatchObject({ conversation: DM, seq: 120 })
    expect(engine.state.summaries[DM].unread).toBe(0)
    await engine.loadOlder(DM)
    await engine.loadOlder(DM)
    expect(engine.log(DM).items.map((i) => i.seq)[0]).toBe(1)
    expect(engine.log(DM).hasMoreBefore).toBe(false)
    expect(await engine.loadOlder(DM)).toBe(0)
  })

  it('keeps unacked messages across a reload and sends them once connected', async () => {
    engine.start()
    await connect(0)
    socket().drop(1006)
    const id = engine.send(DM, 'later')
    engine.stop()
    const again = new Engine(createState('alice'), {
      api,
      wsUrl: 'ws://test/ws',
      token: () => 'tok',
      openSocket: (url) => {
        const created = new FakeSocket(url)
        sockets.push(created)
        return created
      },
      timers,
      storage,
    })
    again.start()
    expect(visible(again.log(DM))[0].status).toBe('pending')
    await connect(0)
    expect(socket().last('send').client_msg_id).toBe(id)
  })

  it('stops and reports when the session is revoked', async () => {
    let lost = 0
    const revoked = new Engine(createState('alice'), {
      api,
      wsUrl: 'ws://test/ws',
      token: () => 'tok',
      openSocket: (url) => {
        const created = new FakeSocket(url)
        sockets.push(created)
        return created
      },
      timers,
      onAuthLost: (code) => {
        lost = code
      },
    })
    revoked.start()
    await connect(0)
    socket().drop(4003)
    timers.advance(60_000)
    expect(lost).toBe(4003)
    expect(sockets).toHaveLength(1)
  })
})
