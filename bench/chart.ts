// Renders the throughput chart (files/s per tool and per thread count) as a standalone SVG.
// Hand-written on purpose: one horizontal bar chart is ~100 lines, less code to review than a charting
// dependency (and the headless DOM or canvas most of them need to produce an SVG file in Node).

export interface Bar {
  label: string;
  value: number;
  /** Range over the rounds, drawn as a whisker across the bar end. */
  min?: number;
  max?: number;
  /** statesnap's own cases get the accent colour. */
  highlight?: boolean;
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  unit: string;
  bars: readonly Bar[];
}

const WIDTH = 820;
const LABEL_WIDTH = 240;
const VALUE_WIDTH = 110;
const ROW_HEIGHT = 26;
const BAR_HEIGHT = 16;
const TOP = 64;
const BOTTOM = 36;
const PLOT_LEFT = LABEL_WIDTH + 10;
const PLOT_WIDTH = WIDTH - PLOT_LEFT - VALUE_WIDTH;

const number = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function escapeXml(text: string): string {
  return text.replace(
    /[<>&"']/g,
    (char) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[char]};`,
  );
}

/** 1, 2 or 5 times a power of ten: a tick step giving about `ticks` gridlines up to `max`. */
function niceStep(max: number, ticks: number): number {
  const rough = max / ticks;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough);
  return step ?? 10 * power;
}

function fixed(value: number): string {
  return String(Math.round(value * 10) / 10);
}

export function renderBarChart(options: ChartOptions): string {
  const { bars } = options;
  const top = Math.max(1, ...bars.map((bar) => Math.max(bar.value, bar.max ?? 0)));
  const step = niceStep(top, 5);
  const axisMax = Math.ceil(top / step) * step;
  const x = (value: number) => PLOT_LEFT + (Math.max(0, value) / axisMax) * PLOT_WIDTH;
  const height = TOP + bars.length * ROW_HEIGHT + BOTTOM;
  const plotBottom = TOP + bars.length * ROW_HEIGHT;

  const grid: string[] = [];
  for (let tick = 0; tick <= axisMax + step / 2; tick += step) {
    grid.push(
      `<line x1="${fixed(x(tick))}" y1="${TOP - 4}" x2="${fixed(x(tick))}" y2="${plotBottom}" stroke="#e3e3e3"/>`,
      `<text x="${fixed(x(tick))}" y="${plotBottom + 16}" text-anchor="middle" fill="#666">${number.format(tick)}</text>`,
    );
  }

  const rows = bars.map((bar, index) => {
    const y = TOP + index * ROW_HEIGHT;
    const barY = y + (ROW_HEIGHT - BAR_HEIGHT) / 2;
    const middle = barY + BAR_HEIGHT / 2;
    const label = escapeXml(bar.label);
    const value = `${number.format(bar.value)} ${escapeXml(options.unit)}`;
    const parts = [
      `<text x="${LABEL_WIDTH}" y="${fixed(middle + 4)}" text-anchor="end">${label}</text>`,
      `<rect class="bar" x="${PLOT_LEFT}" y="${fixed(barY)}" width="${fixed(x(bar.value) - PLOT_LEFT)}" ` +
        `height="${BAR_HEIGHT}" fill="${bar.highlight ? '#2f6fdb' : '#9aa3ad'}"><title>${label}: ${value}</title></rect>`,
    ];
    if (bar.min !== undefined && bar.max !== undefined && bar.max > bar.min) {
      parts.push(
        `<line class="range" x1="${fixed(x(bar.min))}" y1="${fixed(middle)}" x2="${fixed(x(bar.max))}" ` +
          `y2="${fixed(middle)}" stroke="#222" stroke-width="1.5"/>`,
      );
    }
    const valueX = Math.max(x(bar.value), x(bar.max ?? 0)) + 6;
    parts.push(`<text x="${fixed(valueX)}" y="${fixed(middle + 4)}" fill="#333">${value}</text>`);
    return `<g>${parts.join('')}</g>`;
  });

  const lines = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ` +
      'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">',
    `<title>${escapeXml(options.title)}</title>`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="26" font-size="16" font-weight="600">${escapeXml(options.title)}</text>`,
    `<g class="grid">${grid.join('')}</g>`,
    `<g class="bars">${rows.join('')}</g>`,
    '</svg>',
  ];
  if (options.subtitle !== undefined) {
    lines.splice(4, 0, `<text x="16" y="46" fill="#555">${escapeXml(options.subtitle)}</text>`);
  }
  return `${lines.join('\n')}\n`;
}
