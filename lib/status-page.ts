/**
 * The status page served at `/`: one static HTML+JS string, no build step, no framework. It reads
 * /api/v1/state every 2 s and draws it with textContent only (issue titles come from Linear:
 * never parsed as HTML); PR links only when they are http(s). Retry and cancel buttons POST to
 * the API. A token (when the server needs one) comes from the page's `#token=` fragment, is kept
 * in sessionStorage and sent as `Authorization: Bearer`; the page itself carries no data.
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rose-factory status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.2rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .3rem; } h3 { font-size: .95rem; margin: .9rem 0 .2rem; color: #555; }
  table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #eee; vertical-align: top; }
  th { font-weight: 600; color: #666; } .muted { color: #777; } .err { color: #a40000; } .path { font-family: ui-monospace, monospace; word-break: break-all; }
  button { font: inherit; padding: .05rem .5rem; cursor: pointer; }
</style>
</head>
<body>
<h1>rose-factory</h1>
<div id="meta" class="muted">loading…</div>
<div id="problem" class="err"></div>
<div id="agents"></div>
<script>
(() => {
  const hash = new URLSearchParams(location.hash.slice(1))
  if (hash.get('token')) { sessionStorage.setItem('rose-token', hash.get('token')); history.replaceState(null, '', location.pathname) }
  const headers = () => {
    const t = sessionStorage.getItem('rose-token')
    return t ? { authorization: 'Bearer ' + t } : {}
  }
  const el = (tag, props, ...kids) => {
    const n = document.createElement(tag)
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null) continue
      if (k.startsWith('data-')) n.setAttribute(k, v); else n[k] = v
    }
    for (const k of kids) if (k !== undefined && k !== null) n.append(k instanceof Node ? k : String(k))
    return n
  }
  const link = (url, text, cls) => /^https?:\\/\\//.test(url || '') ? el('a', { href: url, textContent: text, className: cls, target: '_blank', rel: 'noopener' }) : ''
  const ago = (ms) => ms < 60000 ? Math.round(ms / 1000) + ' s' : Math.round(ms / 60000) + ' min'
  const money = (usd) => usd ? '$' + usd.toFixed(2) : ''
  const problem = (text) => { document.getElementById('problem').textContent = text || '' }

  async function act(agent, key, verb) {
    const res = await fetch('/api/v1/issues/' + encodeURIComponent(key) + '/' + verb + '?agent=' + encodeURIComponent(agent), {
      method: 'POST', headers: { 'content-type': 'application/json', ...headers() }, body: '{}',
    })
    const data = await res.json().catch(() => ({}))
    problem(res.ok ? '' : verb + ' ' + key + ': ' + (data.error ? data.error.message : res.status))
    refresh()
  }
  const button = (agent, key, verb, label) => el('button', { className: verb, 'data-issue': key, 'data-agent': agent, textContent: label, onclick: () => act(agent, key, verb) })

  function section(title, group, rows, columns) {
    if (!rows.length) return []
    const head = el('tr', {}, ...columns.map((c) => el('th', { textContent: c[0] })))
    const body = rows.map((r) => el('tr', { 'data-issue': r.identifier, 'data-group': group }, ...columns.map((c) => el('td', {}, c[1](r)))))
    return [el('h3', { textContent: title + ' (' + rows.length + ')' }), el('table', { 'data-section': group }, head, ...body)]
  }
  const issueCell = (r) => el('span', {}, link(r.url, r.identifier) || r.identifier, ' ', el('span', { className: 'muted', textContent: r.title + (r.repo ? ' · in ' + r.repo : '') }))
  const errCell = (r) => r.lastError ? el('span', { className: 'err', textContent: r.lastError.code + ': ' + r.lastError.message }) : ''

  function draw(view) {
    document.getElementById('meta').textContent = (view.mode === 'loop' ? 'loop' : 'watching') + ' pid ' + view.pid + ' · ' + view.home + ' · updated ' + new Date(view.at).toLocaleTimeString()
    const out = []
    for (const [name, a] of Object.entries(view.agents)) {
      const poll = a.poll.lastPollError ? 'poll FAILING: ' + a.poll.lastPollError.code + ' ' + a.poll.lastPollError.message : 'last poll ' + (a.poll.lastPollAt || 'never')
      const rate = a.rateLimit ? ' · Linear rate-limited until ' + a.rateLimit.limitedUntil : ''
      const relay = a.relay ? ' · relay ' + (a.relay.connected === null ? 'unknown' : a.relay.connected ? 'connected' : 'disconnected') : ''
      out.push(el('h2', { 'data-agent': name }, name, ' ', el('span', { className: 'muted', textContent: (a.engine || '') + ' · ' + poll + rate + relay })))
      out.push(...section('Running', 'running', a.running, [
        ['issue', issueCell], ['Linear', (r) => r.linearState || ''], ['run', (r) => '#' + (r.run || '?') + ' ' + (r.engine || '')],
        ['pid', (r) => r.pid ? r.pid + (r.step ? ' (' + r.step + ')' : '') : 'owner gone'], ['elapsed', (r) => r.elapsedMs === undefined ? '' : ago(r.elapsedMs)],
        ['cost', (r) => money(r.costUsd)], ['', (r) => button(name, r.identifier, 'cancel', 'Cancel')],
      ]))
      out.push(...section('Queued', 'queued', a.queued, [['issue', issueCell], ['Linear', (r) => r.linearState || ''], ['', errCell], ['', (r) => button(name, r.identifier, 'cancel', 'Cancel')]]))
      out.push(...section('Retrying', 'retrying', a.retrying, [
        ['issue', issueCell], ['attempt', (r) => String(r.attempts + 1)], ['due', (r) => new Date(r.nextRetryAt).toLocaleTimeString()], ['last error', errCell],
        ['', (r) => button(name, r.identifier, 'retry', 'Retry now')],
      ]))
      for (const [title, group] of [['Escalated', 'escalated'], ['Failed', 'failed']])
        out.push(...section(title, group, a[group], [['issue', issueCell], ['last error', errCell], ['PR', (r) => link(r.prUrl, 'PR', 'pr')], ['', (r) => button(name, r.identifier, 'retry', 'Retry')]]))
      out.push(...section('Cancelled', 'cancelled', a.cancelled, [['issue', issueCell], ['why', (r) => r.releasedReason || ''], ['', (r) => button(name, r.identifier, 'retry', 'Retry')]]))
      out.push(...section('Recent runs', 'recent', a.recent, [
        ['issue', issueCell], ['Linear', (r) => el('span', { className: 'linear-state', textContent: r.linearState || '' })], ['run', (r) => '#' + r.n + ' ' + r.state],
        ['ended', (r) => r.endedAt ? new Date(r.endedAt).toLocaleString() : ''], ['cost', (r) => money(r.costUsd)], ['PR', (r) => link(r.prUrl, r.prUrl, 'pr')],
      ]))
      if (!a.running.length && !a.queued.length && !a.retrying.length && !a.escalated.length && !a.failed.length && !a.recent.length)
        out.push(el('p', { className: 'muted', textContent: 'nothing on record yet' }))
    }
    document.getElementById('agents').replaceChildren(...out)
  }

  let timer
  async function refresh() {
    clearTimeout(timer)
    try {
      const res = await fetch('/api/v1/state', { headers: headers() })
      const data = await res.json()
      if (!res.ok) throw new Error(res.status === 401 ? 'this server needs its token: open /#token=<ROSE_STATUS_TOKEN>' : data.error.message)
      draw(data)
      if (document.getElementById('problem').dataset.source === 'state') problem('')
    } catch (err) {
      problem('cannot read the state: ' + err.message)
      document.getElementById('problem').dataset.source = 'state'
    }
    timer = setTimeout(refresh, 2000)
  }
  refresh()
})()
</script>
</body>
</html>
`
