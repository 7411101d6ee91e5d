/**
 * A Server-Sent Events parser without I/O: text chunks in, events out.
 *
 * The portal reads the live stream with `fetch` (so the token travels in the
 * Authorization header, never in a URL that proxies log) and therefore parses
 * the `text/event-stream` format itself, as the HTML standard describes it:
 * lines `field: value`, an empty line ends an event, lines starting with `:`
 * are comments (the server's heartbeat), `id` sets the last event id.
 */

export interface SseEvent {
  /** `message` unless the server named it (`resync`). */
  event: string;
  data: string;
  id: string | null;
}

export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | null = null;
  /** The id of the last event, kept across events as the standard says. */
  lastEventId: string | null = null;

  /** Feeds a chunk of text; answers the events it completed. */
  feed(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const events: SseEvent[] = [];
    let end: number;
    while ((end = this.lineEnd()) >= 0) {
      const line = this.buffer.slice(0, end);
      const skip = this.buffer[end] === "\r" && this.buffer[end + 1] === "\n" ? 2 : 1;
      this.buffer = this.buffer.slice(end + skip);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  private lineEnd(): number {
    const match = /[\r\n]/.exec(this.buffer);
    if (!match) return -1;
    // A lone "\r" at the end may be the first half of "\r\n": wait for more.
    if (match.index === this.buffer.length - 1 && this.buffer.endsWith("\r")) return -1;
    return match.index;
  }

  private line(line: string): SseEvent | null {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return null;
  }

  private dispatch(): SseEvent | null {
    if (this.id !== null) this.lastEventId = this.id;
    const event = this.data.length === 0 ? null : { event: this.event || "message", data: this.data.join("\n"), id: this.lastEventId };
    this.data = [];
    this.event = "";
    this.id = null;
    return event;
  }
}
