// The WebSocket: connect, authenticate with an `auth` frame, hand frames to the
// engine, and reconnect with backoff when the socket drops. Knows nothing about
// inboxes or messages.

import { Backoff } from './backoff'
import type { ServerFrame } from './types'

export type ConnectionStatus = 'connecting' | 'open' | 'closed'

/** The part of the browser's WebSocket the connection uses (tests pass a fake). */
export interface SocketLike {
  readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number; reason?: string }) => void) | null
  onerror: ((event: unknown) => void) | null
}

export interface ConnectionEvents {
  /** The socket is open and authenticated (`ready` is the first frame given). */
  frame(frame: ServerFrame): void
  status(status: ConnectionStatus, detail?: { code?: number; retryIn?: number }): void
  /** The token is no good (4001) or the device was signed out (4003). */
  authLost(code: number): void
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  now(): number
}

const browserTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
}

const OPEN = 1
// Close codes after which reconnecting with the same token is pointless.
const AUTH_CLOSE_CODES = new Set([4001, 4003])
// Without any frame for this long (ms), probe with a `ping`; a socket that
// stays silent after the probe is treated as dead and replaced.
const IDLE_PROBE = 25_000
const PROBE_GRACE = 10_000

export class Connection {
  status: ConnectionStatus = 'closed'
  private socket: SocketLike | null = null
  private stopped = true
  private retryTimer: unknown = null
  private idleTimer: unknown = null
  private probing = false

  constructor(
    private readonly url: string,
    private readonly token: () => string | null,
    private readonly events: ConnectionEvents,
    private readonly open: (url: string) => SocketLike = (u) => new WebSocket(u) as unknown as SocketLike,
    private readonly timers: Timers = browserTimers,
    readonly backoff = new Backoff(),
  ) {}

  start(): void {
    this.stopped = false
    this.connect()
  }

  stop(): void {
    this.stopped = true
    this.clearTimers()
    const socket = this.socket
    this.socket = null
    if (socket) {
      detach(socket)
      socket.close(1000)
    }
    this.setStatus('closed')
  }

  /** Write a frame; false when there is no open socket (the caller keeps it for later). */
  send(frame: Record<string, unknown>): boolean {
    if (!this.socket || this.socket.readyState !== OPEN || this.status !== 'open') return false
    this.socket.send(JSON.stringify(frame))
    return true
  }

  /** Drop the socket now and reconnect (used when the engine sees it is stale). */
  restart(): void {
    const socket = this.socket
    if (!socket) return
    socket.close(4000)
    // A dead socket may take long to report its close: do not wait for it.
    this.closed(socket, 4000)
  }

  private connect(): void {
    if (this.stopped) return
    const token = this.token()
    if (!token) {
      this.events.authLost(4001)
      return
    }
    this.setStatus('connecting')
    const socket = this.open(this.url)
    this.socket = socket
    socket.onopen = () => socket.send(JSON.stringify({ op: 'auth', token }))
    socket.onmessage = (event) => this.receive(socket, event.data)
    socket.onerror = () => undefined // onclose follows and handles it
    socket.onclose = (event) => this.closed(socket, event.code)
  }

  private receive(socket: SocketLike, data: unknown): void {
    if (socket !== this.socket) return
    let frame: ServerFrame
    try {
      frame = JSON.parse(String(data))
    } catch {
      return
    }
    this.armIdle()
    if (frame.op === 'ready') {
      this.backoff.reset()
      this.setStatus('open')
    }
    this.events.frame(frame)
  }

  private closed(socket: SocketLike, code: number): void {
    if (socket !== this.socket) return
    detach(socket)
    this.socket = null
    this.clearTimers()
    if (this.stopped) return
    if (AUTH_CLOSE_CODES.has(code)) {
      this.stopped = true
      this.setStatus('closed', { code })
      this.events.authLost(code)
      return
    }
    const delay = this.backoff.next()
    this.setStatus('closed', { code, retryIn: delay })
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null
      this.connect()
    }, delay)
  }

  private armIdle(): void {
    if (this.idleTimer !== null) this.timers.clearTimeout(this.idleTimer)
    this.probing = false
    this.idleTimer = this.timers.setTimeout(() => this.probe(), IDLE_PROBE)
  }

  private probe(): void {
    this.idleTimer = null
    if (!this.socket) return
    if (this.probing) {
      this.restart()
      return
    }
    this.probing = true
    this.send({ op: 'ping', ref: 'probe' })
    this.idleTimer = this.timers.setTimeout(() => this.probe(), PROBE_GRACE)
  }

  private clearTimers(): void {
    for (const timer of [this.retryTimer, this.idleTimer]) {
      if (timer !== null) this.timers.clearTimeout(timer)
    }
    this.retryTimer = null
    this.idleTimer = null
    this.probing = false
  }

  private setStatus(status: ConnectionStatus, detail?: { code?: number; retryIn?: number }): void {
    this.status = status
    this.events.status(status, detail)
  }
}

function detach(socket: SocketLike): void {
  socket.onopen = null
  socket.onmessage = null
  socket.onclose = null
  socket.onerror = null
}
