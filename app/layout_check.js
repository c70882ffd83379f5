// What the browser test measures on a page of the app (tests/test_app_browser.py): every chart's text boxes, and
// whether any of them collide or are cut. One evaluation per page; returns a list of sentences, empty when all holds.
// Charts: plotly figures (their SVG's title, legend, tick labels, axis titles, annotations and bar labels) and the
// app's own SVG charts (svg[role=img]: every <text>). A metric (st.metric or the app's figure blocks) is cut when
// its value is wider than its box.
() => {
  const problems = [...document.querySelectorAll('[data-testid="stException"]')]
    .map(e => `an exception: ${(e.textContent || '').trim().slice(0, 120)}`);
  const box = el => { const r = el.getBoundingClientRect(); return {x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; };
  const empty = b => b.x1 - b.x0 < 0.5 || b.y1 - b.y0 < 0.5;
  const overlap = (a, b, slack = 1) => a.x0 < b.x1 - slack && b.x0 < a.x1 - slack && a.y0 < b.y1 - slack && b.y0 < a.y1 - slack;
  const inside = (a, b, slack = 1) => a.x0 >= b.x0 - slack && a.y0 >= b.y0 - slack && a.x1 <= b.x1 + slack && a.y1 <= b.y1 + slack;
  const words = el => (el.textContent || '').trim().slice(0, 40);
  const charts = [];
  const shown = el => !el.closest('details:not([open])') && !empty(box(el));   // a folded expander's charts are not drawn
  document.querySelectorAll('[data-testid="stPlotlyChart"]').forEach((c, i) => {
    const svg = c.querySelector('svg.main-svg');
    if (!svg || !shown(svg)) return;
    const texts = [];
    // The infolayer (titles, legend, annotations) is a second main-svg laid over the first.
    c.querySelectorAll('.gtitle, .legend, .xtitle, .ytitle, .xtick text, .ytick text, .annotation, .bartext')
      .forEach(t => { const b = box(t); if (!empty(b) && words(t)) texts.push({b, kind: t.classList[0] || t.tagName, text: words(t), el: t}); });
    charts.push({name: `plotly chart ${i + 1}`, b: box(svg), texts});
  });
  document.querySelectorAll('svg[role="img"]').forEach((svg, i) => {
    if (!shown(svg)) return;
    const texts = [];
    svg.querySelectorAll('text').forEach(t => { const b = box(t); if (!empty(b) && words(t)) texts.push({b, kind: 'text', text: words(t), el: t}); });
    charts.push({name: `SVG chart ${i + 1} (${(svg.getAttribute('aria-label') || '').slice(0, 40)})`, b: box(svg), texts});
  });
  for (const c of charts) {
    for (const t of c.texts)
      if (!inside(t.b, c.b)) problems.push(`${c.name}: '${t.text}' (${t.kind}) leaves its chart`);
    // Within one chart: no two text boxes over each other (a legend over a bar label, two subplot titles run together).
    for (let i = 0; i < c.texts.length; i++) for (let j = i + 1; j < c.texts.length; j++) {
      const t = c.texts[i], u = c.texts[j];
      if (t.el && (t.el.contains(u.el) || u.el.contains(t.el))) continue;
      if (overlap(t.b, u.b)) problems.push(`${c.name}: '${t.text}' (${t.kind}) and '${u.text}' (${u.kind}) overlap`);
    }
  }
  for (let i = 0; i < charts.length; i++) for (let j = i + 1; j < charts.length; j++) {
    if (!overlap(charts[i].b, charts[j].b, -40)) continue;   // far apart: nothing to compare
    for (const a of charts[i].texts) for (const b of charts[j].texts)
      if (overlap(a.b, b.b)) problems.push(`'${a.text}' of ${charts[i].name} and '${b.text}' of ${charts[j].name} overlap`);
  }
  const cut = el => el.scrollWidth > el.clientWidth + 1;
  document.querySelectorAll('[data-testid="stMetricValue"], .stat-value').forEach(v => {
    for (const el of [v, ...v.querySelectorAll('*')]) if (cut(el)) { problems.push(`the figure '${words(v)}' is cut`); break; }
  });
  document.querySelectorAll('[data-testid="stMetricLabel"]').forEach(v => {
    for (const el of [v, ...v.querySelectorAll('*')]) if (cut(el)) { problems.push(`the label '${words(v)}' is cut`); break; }
  });
  // Formulas wider than their column are cut (or scroll) on the right (3 px: KaTeX's italic correction of a last
  // subscript overflows by 2 px and shows whole).
  document.querySelectorAll('.katex-display').forEach(k => {
    if (k.scrollWidth > k.clientWidth + 3) problems.push(`the formula '${words(k)}' is cut`);
  });
  return problems;
}
