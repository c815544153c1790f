/** Step-by-step progress for long builds: one line per step with its duration. */
export class Progress {
  private step = 0;
  private started = 0;
  private current = '';
  private ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {}

  begin(what: string): void {
    this.step += 1;
    this.current = what;
    this.started = Date.now();
    if (this.out.isTTY) {
      this.render('…');
      this.ticker = setInterval(() => this.render(`${this.elapsed()}s`), 500);
      this.ticker.unref();
    } else {
      this.out.write(`[${this.step}/${this.total}] ${what} …\n`);
    }
  }

  end(note = 'done'): void {
    clearInterval(this.ticker);
    const line = `[${this.step}/${this.total}] ${this.current}: ${note} (${this.elapsed()}s)`;
    this.out.write(this.out.isTTY ? `\r\x1b[K${line}\n` : `${line}\n`);
  }

  info(line: string): void {
    this.out.write(`${line}\n`);
  }

  private elapsed(): string {
    return ((Date.now() - this.started) / 1000).toFixed(1);
  }

  private render(suffix: string): void {
    this.out.write(`\r\x1b[K[${this.step}/${this.total}] ${this.current} ${suffix}`);
  }
}
