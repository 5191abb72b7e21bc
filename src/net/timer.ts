/**
 * The one timer of a session (§60.9: "timeouts are per state"): every state change sets
 * it anew; 0 seconds means the state has none. Tests shrink every timeout by `scale`. It
 * never keeps the process alive on its own.
 */
export class SessionTimer {
  private handle: NodeJS.Timeout | undefined;
  /** The duration `handle` was made with (ms). */
  private ms = 0;

  constructor(
    private readonly onExpire: () => void,
    private readonly scale = 1,
  ) {}

  set(seconds: number): void {
    const ms = seconds * 1000 * this.scale;
    // Most state changes keep the duration: restart the same timer (refresh re-arms one
    // that already fired) instead of a clearTimeout and a new Timeout per command.
    if (seconds > 0 && this.handle !== undefined && this.ms === ms) {
      this.handle.refresh();
      return;
    }
    this.clear();
    if (seconds <= 0) return;
    this.handle = setTimeout(this.onExpire, ms);
    this.handle.unref();
    this.ms = ms;
  }

  clear(): void {
    if (this.handle) clearTimeout(this.handle);
    this.handle = undefined;
  }
}
