// The live chart's data: polls /control/positions for the samples and the signed-in session's
// decisions it does not have yet, keeps the server's window of them, and redraws.
import { renderChart } from './chart.js';

const POLL_MS = 250;

/** Starts the chart in `svg` and `legend` for the session `session()` names (switching it starts over). */
export function startTimeline(svg, legend, session) {
  let shown;
  let samples = [];
  let decisions = [];
  let since = 0;
  let after = 0;
  let busy = false;

  async function pollOnce() {
    if (shown !== session()) {
      shown = session();
      samples = [];
      decisions = [];
      since = 0;
      after = 0;
    }
    const asked = shown;
    const query = new URLSearchParams({ session: asked, since: String(since), after: String(after) });
    const data = await (await fetch(`/control/positions?${query}`)).json();
    if (asked !== session()) return; // switched meanwhile: the next poll starts over
    const from = data.now - data.windowMs;
    samples = samples.concat(data.samples).filter((s) => s.at >= from);
    decisions = decisions.concat(data.decisions).filter((d) => d.at >= from);
    since = data.samples.at(-1)?.seq ?? since;
    after = data.lastDecision;
    renderChart(svg, legend, { ...data, samples, decisions, session: asked });
  }

  async function poll() {
    if (busy) return; // one request at a time: each asks for what came after the last it has
    busy = true;
    try {
      await pollOnce();
    } catch {
      // the demo server restarting or gone: the next poll tries again
    } finally {
      busy = false;
    }
  }

  poll();
  setInterval(poll, POLL_MS);
}
