// The demo page: plain DOM, polling the demo server's control API.
import { startTimeline } from './timeline.js';

const $ = (id) => document.getElementById(id);
const user = () => $('user').value;
let state = { following: false };
let since = 0;

$('user').value = localStorage.getItem('demo-user') ?? 'ada';
$('user').onchange = () => {
  localStorage.setItem('demo-user', user());
  refresh();
};

async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json', 'x-demo-user': user() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return res.json();
}

function render() {
  $('follow').textContent = state.following ? 'Following' : 'Follow';
  $('follow').className = state.following ? 'following' : '';
  $('followers').textContent = `${state.followers ?? 0} followers`;
  $('served').textContent = `This page's reads: ${state.instance}, database port ${state.servedByPort}, mode "${state.mode}"`;
  $('posts').innerHTML = '';
  for (const post of state.posts ?? []) {
    const li = document.createElement('li');
    li.textContent = `@${post.author}: ${post.body}`;
    $('posts').append(li);
  }
}

async function refresh() {
  state = await api('/api/state?target=grace');
  render();
  return state;
}

function detect(write, ok, after) {
  const row = document.createElement('tr');
  row.innerHTML = `<td>${new Date().toLocaleTimeString()}</td><td>${write}</td><td class="${ok ? 'fresh' : 'stale'}">${ok ? 'saw it' : 'STALE: did not see it'}</td><td>${after.instance} / port ${after.servedByPort}</td>`;
  $('detector').prepend(row);
}

$('follow').onclick = async () => {
  const follow = !state.following;
  await api('/api/follow', { target: 'grace', follow });
  const after = await refresh(); // re-read at once, as a page would after the success toast
  detect(follow ? 'follow' : 'unfollow', after.following === follow, after);
};
$('reload').onclick = () => location.reload();
$('post').onsubmit = async (event) => {
  event.preventDefault();
  const body = $('body').value || 'hello';
  const { id } = await api('/api/posts', { body });
  $('body').value = '';
  const after = await refresh();
  detect(
    `post #${id}`,
    after.posts.some((p) => p.id === id),
    after,
  );
};

async function control(path, body) {
  await fetch(`/control/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await poll();
}

let built = false;
let polling = false;
async function poll() {
  if (polling) return; // one poll at a time: each asks for what came after the last entry it has
  polling = true;
  try {
    await pollOnce();
  } finally {
    polling = false;
  }
}
async function pollOnce() {
  const status = await (await fetch(`/control/status?since=${since}`)).json();
  $('banner').hidden = status.store !== 'memory';
  if (!built) {
    built = true;
    for (const [key, label] of Object.entries(status.modes)) {
      const el = document.createElement('label');
      el.innerHTML = `<input type="radio" name="mode" value="${key}"> ${label}`;
      el.querySelector('input').onchange = () => control('mode', { mode: key });
      $('modes').append(el);
    }
    $('rr').onchange = () => control('round-robin', { on: $('rr').checked });
    for (const replica of status.replicas) {
      const el = document.createElement('div');
      el.innerHTML = `<strong>${replica.name}</strong> apply delay <input type="number" min="0" max="5000" step="250" value="0" data-delay> ms <label><input type="checkbox" data-pause> pause replay</label>`;
      el.querySelector('[data-delay]').onchange = (e) => control(`replicas/${replica.name}`, { delayMs: Number(e.target.value) });
      el.querySelector('[data-pause]').onchange = (e) => control(`replicas/${replica.name}`, { paused: e.target.checked });
      el.querySelectorAll('input').forEach((i) => (i.disabled = !status.controls));
      el.dataset.replica = replica.name;
      $('replicas').append(el);
    }
  }
  for (const input of document.querySelectorAll('input[name=mode]')) input.checked = input.value === status.mode;
  $('rr').checked = status.roundRobin;
  for (const replica of status.replicas) {
    const box = document.querySelector(`[data-replica="${replica.name}"] [data-pause]`);
    if (box) box.checked = replica.paused;
  }
  $('counters').innerHTML = status.instances
    .flatMap((i) =>
      i.nodes.map(
        (n) =>
          `<tr><td>${i.name}</td><td>${n.name}</td><td>${n.status}</td><td>${n.served}</td><td>${n.lagMs ?? ''}${n.lagMs === undefined || n.lagMs === null ? '' : ' ms'}</td></tr>`,
      ),
    )
    .join('');
  for (const d of status.decisions) {
    const row = document.createElement('tr');
    row.innerHTML = `<td>${new Date(d.at).toLocaleTimeString()}</td><td>${d.statement}</td><td class="${d.role}">${d.node}</td><td>${d.reason}</td><td>${d.floor}</td><td>${d.replay ?? ''}</td><td>${d.waitMs} ms</td>`;
    $('log').prepend(row);
    while ($('log').children.length > 40) $('log').lastChild.remove();
  }
  since = status.decisions.length ? status.decisions[status.decisions.length - 1].seq : since;
}

startTimeline($('chart'), $('legend'), user);
await refresh();
await poll();
setInterval(poll, 1000);
