// The positions chart: a small SVG renderer, no library. Lines are step lines of WAL positions in
// bytes (the server's scale: equal positions overlap); marks are the session's routing decisions,
// placed at the floor each was made for. Data attributes carry the values, for tests and tools.
const COLORS = { primary: '#d98a00', floor: '#8e3fc4', replicas: ['#0b5cad', '#1e8a3c', '#b3261e', '#5a6475'] };
// The right margin leaves room for the labels of the latest marks.
const MARGIN = { left: 70, right: 150, top: 16, bottom: 26 };
const HEIGHT = 300;
/** The y axis fits what the last 20 s show: an old jump (the schema at start) does not flatten today's lag. */
const RECENT_MS = 20_000;

const esc = (text) => String(text).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** Bytes as the axis and legend show them: `+1.2 kB`, `-312 B`. */
function formatBytes(bytes, signed = true) {
  const sign = bytes < 0 ? '-' : signed ? '+' : '';
  const n = Math.abs(bytes);
  const text = n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(1)} kB` : `${Math.round(n)} B`;
  return `${sign}${text}`;
}

/** The colour and dash of each line: the primary a wide band, replicas drawn over it. */
function seriesStyles(replicas) {
  return [
    { key: 'primary', label: 'primary insert LSN', color: COLORS.primary, width: 8, dash: '', opacity: 0.45 },
    ...replicas.map((name, i) => ({
      key: name,
      label: `${name} replay LSN`,
      color: COLORS.replicas[i % COLORS.replicas.length],
      width: 2.5,
      dash: i % 2 ? '7 4' : '',
      opacity: 1,
    })),
    { key: 'floor', label: 'your floor', color: COLORS.floor, width: 2, dash: '2 3', opacity: 1 },
  ];
}

const valueOf = (sample, key) => (key === 'primary' ? sample.primary : key === 'floor' ? sample.floor : (sample.replicas[key] ?? null));

/** The y range over the values given, padded; a flat chart gets some room around its line. */
function yRange(samples, keys, decisions) {
  const values = samples.flatMap((s) => keys.map((k) => valueOf(s, k))).concat(decisions.map((d) => d.floor));
  const known = values.filter((v) => v !== null && v !== undefined);
  if (!known.length) return [0, 1024];
  const min = Math.min(...known);
  const max = Math.max(...known);
  const pad = Math.max((max - min) * 0.12, 256);
  return [min - pad, max + pad];
}

/** A step path through the samples' values of one series; unknown values break it. */
function stepPath(samples, key, x, y) {
  let d = '';
  let open = false;
  for (const s of samples) {
    const v = valueOf(s, key);
    if (v === null || v === undefined) {
      open = false;
      continue;
    }
    d += open ? `H${x(s.at).toFixed(1)}V${y(v).toFixed(1)}` : `M${x(s.at).toFixed(1)} ${y(v).toFixed(1)}`;
    open = true;
  }
  return d;
}

function lastValue(samples, key) {
  for (let i = samples.length - 1; i >= 0; i--) {
    const v = valueOf(samples[i], key);
    if (v !== null && v !== undefined) return v;
  }
  return null;
}

/** Round steps for the y axis: 1, 2 or 5 times a power of ten bytes, about four of them. */
function ticks(yMin, yMax) {
  const rough = (yMax - yMin) / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].find((m) => m * power >= rough) * power;
  const out = [];
  for (let v = Math.ceil(yMin / step) * step; v <= yMax; v += step) out.push(v);
  return out;
}

function axes(width, height, x0, x1, y, yMin, yMax, windowMs) {
  let out = '';
  for (const v of ticks(yMin, yMax)) {
    out += `<line class="grid" x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${y(v)}" y2="${y(v)}" stroke="#eceef2"/>`;
    out += `<text x="${MARGIN.left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11" fill="#5a6475">${formatBytes(v)}</text>`;
  }
  for (let s = 0; s <= windowMs / 1000; s += 5) {
    const px = x1 - (s * 1000 * (x1 - x0)) / windowMs;
    out += `<text x="${px}" y="${height - 8}" text-anchor="middle" font-size="11" fill="#5a6475">${s ? `-${s} s` : 'now'}</text>`;
  }
  return out;
}

/** Places labels right of their marks, moved up or down past the ones already placed; skipped when there is no room. */
function labelPlacer(top, bottom) {
  const placed = [];
  return (px, py, text) => {
    const w = text.length * 7 + 4;
    for (const dy of [-10, 18, -26, 34, -42, 50]) {
      const box = { x: px + 8, y: py + dy, w };
      if (box.y < top + 10 || box.y > bottom) continue;
      if (placed.some((b) => box.x < b.x + b.w && b.x < box.x + box.w && Math.abs(box.y - b.y) < 15)) continue;
      placed.push(box);
      return box;
    }
    return undefined;
  };
}

/** The shape of one decision: a circle for a read on a replica, a square on the primary, a hollow square for a write. */
function markShape(d, px, py, color) {
  const title = `<title>${esc(`${d.statement} → ${d.node}: ${d.reason}`)}</title>`;
  const data = `data-decision data-seq="${d.seq}" data-role="${esc(d.role)}" data-node="${esc(d.node)}" data-reason="${esc(d.reason)}" data-statement="${esc(d.statement)}"`;
  if (d.role === 'replica')
    return `<circle ${data} cx="${px}" cy="${py}" r="5.5" fill="${color}" stroke="#fff" stroke-width="1.5">${title}</circle>`;
  const [size, fill] = d.reason === 'not-a-read' ? [8, '#fff'] : [11, color];
  return `<rect ${data} x="${px - size / 2}" y="${py - size / 2}" width="${size}" height="${size}" fill="${fill}" stroke="#7a4b00" stroke-width="1.5">${title}</rect>`;
}

/**
 * The decisions as marks at their floor. Each run of reads on one node gets one label, at its
 * last mark, with the reasons the router gave (`r2 · caught-up`, `primary · replica-behind`).
 */
function marks(decisions, x, y, yMin, yMax, colorOf) {
  const place = labelPlacer(y(yMax), y(yMin));
  let out = '';
  let labels = '';
  let reasons = new Set();
  decisions.forEach((d, i) => {
    const px = x(d.at);
    const py = y(Math.min(yMax, Math.max(yMin, d.floor ?? yMin)));
    const color = d.role === 'replica' ? colorOf(d.node) : COLORS.primary;
    out += markShape(d, px, py, color);
    if (d.reason === 'not-a-read') return; // writes always go to the primary: the legend says so
    reasons.add(d.reason);
    const next = decisions[i + 1];
    if (next && next.node === d.node && next.reason !== 'not-a-read') return; // labelled at the run's last mark
    const text = `${d.node} · ${[...reasons].join(', ')}`;
    reasons = new Set();
    const box = place(px, py, text);
    const fill = d.role === 'replica' ? color : '#7a4b00';
    if (box)
      labels += `<text class="reason" x="${box.x}" y="${box.y + 4}" font-size="12" font-weight="600" fill="${fill}" stroke="#fff" stroke-width="3" paint-order="stroke">${esc(text)}</text>`;
  });
  return out + labels;
}

/**
 * Draws `data` ({ now, windowMs, replicas, samples, decisions, session }) into `svg`, and the
 * legend (with each replica's distance behind the primary) into `legend`.
 */
export function renderChart(svg, legend, data) {
  const width = Math.max(320, svg.clientWidth || 800);
  const { now, windowMs, replicas, samples, session } = data;
  const decisions = data.decisions.filter((d) => d.at >= now - windowMs);
  const styles = seriesStyles(replicas);
  const recent = (item) => item.at >= now - RECENT_MS;
  const [yMin, yMax] = yRange(
    samples.filter(recent),
    styles.map((s) => s.key),
    decisions.filter(recent),
  );
  const x0 = MARGIN.left;
  const x1 = width - MARGIN.right;
  const x = (at) => x1 - ((now - at) * (x1 - x0)) / windowMs;
  const y = (v) => MARGIN.top + ((yMax - v) * (HEIGHT - MARGIN.top - MARGIN.bottom)) / (yMax - yMin);
  const colorOf = (node) => styles.find((s) => s.key === node)?.color ?? COLORS.replicas[3];

  let body = axes(width, HEIGHT, x0, x1, y, yMin, yMax, windowMs);
  body += `<clipPath id="plot"><rect x="${x0}" y="${MARGIN.top - 8}" width="${x1 - x0}" height="${HEIGHT - MARGIN.top - MARGIN.bottom + 16}"/></clipPath>`;
  for (const s of styles) {
    const last = lastValue(samples, s.key);
    body += `<path clip-path="url(#plot)" data-series="${esc(s.key)}" data-last="${last ?? ''}" d="${stepPath(samples, s.key, x, y)}" fill="none" stroke="${s.color}" stroke-width="${s.width}" stroke-dasharray="${s.dash}" stroke-opacity="${s.opacity}" stroke-linejoin="round"/>`;
  }
  body += marks(decisions, x, y, yMin, yMax, colorOf);
  svg.setAttribute('viewBox', `0 0 ${width} ${HEIGHT}`);
  svg.setAttribute('height', String(HEIGHT));
  svg.dataset.samples = String(samples.length);
  svg.dataset.session = session;
  svg.innerHTML = body;

  const primary = lastValue(samples, 'primary');
  legend.innerHTML = styles
    .map((s) => {
      const last = lastValue(samples, s.key);
      const behind = s.key !== 'primary' && s.key !== 'floor' && last !== null && primary !== null && last < primary;
      const note =
        s.key === 'floor'
          ? ` (${esc(session)})`
          : behind
            ? ` <strong class="stale">${formatBytes(primary - last, false)} behind</strong>`
            : s.key === 'primary' || last === null
              ? ''
              : ' <span class="fresh">caught up</span>';
      const line = s.dash ? `border-top: 3px dashed ${s.color}` : `border-top: ${Math.min(s.width, 6)}px solid ${s.color}`;
      return `<span class="key" data-key="${esc(s.key)}"><i style="${line}"></i>${esc(s.label)}${note}</span>`;
    })
    .concat([
      `<span class="key"><i class="dot" style="background:${COLORS.replicas[0]}"></i>read on a replica</span>`,
      `<span class="key"><i class="square" style="background:${COLORS.primary}"></i>read on the primary (labels: why)</span>`,
      `<span class="key"><i class="square" style="background:#fff; border: 1.5px solid #7a4b00"></i>write</span>`,
    ])
    .join('');
}
