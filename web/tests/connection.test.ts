import { describe, expect, it } from 'vitest'
import { Backoff } from '../src/core/backoff'
import { Connection } from '../src/core/connection'
import { FakeSocket, ManualTimers } from './fakes'

function setup() {
  const timers = new ManualTimers()
  const sockets: FakeSocket[] = []
  const frames: string[] = []
  const statuses: string[] = []
  const connection = new Connection(
    'ws://test/ws',
    () => 'tok',
    {
      frame: (frame) => frames.push(frame.op),
      status: (status) => statuses.push(status),
      authLost: () => statuses.push('auth-lost'),
    },
    (url) => {
      const socket = new FakeSocket(url)
      sockets.push(socket)
      return socket
    },
    timers,
    new Backoff({ base: 500, max: 4_000, random: () => 1 }),
  )
  return { timers, sockets, frames, statuses, connection }
}

describe('Connection', () => {
  it('authenticates with an auth frame and is open only after ready', () => {
    const { sockets, statuses, connection } = setup()
    connection.start()
    sockets[0].open()
    expect(sockets[0].sent).toEqual([{ op: 'auth', token: 'tok' }])
    expect(connection.send({ op: 'ping' })).toBe(false)
    sockets[0].deliver({ op: 'ready' })
    expect(statuses).toEqual(['connecting', 'open'])
    expect(connection.send({ op: 'ping' })).toBe(true)
  })

  it('reconnects with growing delays, and starts over after a ready', () => {
    const { timers, sockets, connection } = setup()
    connection.start()
    sockets[0].drop(1006)
    timers.advance(499)
    expect(sockets).toHaveLength(1)
    timers.advance(1)
    expect(sockets).toHaveLength(2)
    sockets[1].drop(1006)
    timers.advance(999)
    expect(sockets).toHaveLength(2)
    timers.advance(1)
    expect(sockets).toHaveLength(3)
    sockets[2].open()
    sockets[2].deliver({ op: 'ready' })
    sockets[2].drop(1001)
    timers.advance(500)
    expect(sockets).toHaveLength(4)
  })

  it('probes a silent socket with ping and replaces it when nothing answers', () => {
    const { timers, sockets, connection } = setup()
    connection.start()
    sockets[0].open()
    sockets[0].deliver({ op: 'ready' })
    timers.advance(25_000)
    expect(sockets[0].last('ping')).toBeDefined()
    timers.advance(10_000)
    expect(sockets[0].closedWith).toBe(4000)
    timers.advance(500)
    expect(sockets).toHaveLength(2)
  })

  it('gives up on a revoked session', () => {
    const { timers, sockets, statuses, connection } = setup()
    connection.start()
    sockets[0].drop(4003)
    timers.advance(60_000)
    expect(sockets).toHaveLength(1)
    expect(statuses).toContain('auth-lost')
  })
})
