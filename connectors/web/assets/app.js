// claimdesk web inbox: live cards over SSE, actions over fetch with the CSRF token.
// Markup always comes from the server (already escaped); this script only swaps it in.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const toastEl = document.getElementById("toast");
  let toastTimer = null;
  function toast(message, bad) {
    if (!message) return;
    toastEl.textContent = message;
    toastEl.className = "show" + (bad ? " bad" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.className = ""; }, 4000);
  }

  function fragment(html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    return tpl.content.firstElementChild;
  }

  const OPEN = ["new", "claimed", "replied", "waiting", "follow_up"];
  function refreshEmpty(list) {
    const empty = document.getElementById("empty");
    if (empty) empty.hidden = list.querySelector("article.card") !== null;
  }
  // "1–50 of 61" follows the view's live count and the cards now on this page
  function refreshShowing(list, counts) {
    const line = document.getElementById("showing");
    const total = counts[list.dataset.view || "open"];
    if (!line || !line.dataset.format || typeof total !== "number") return;
    const onPage = list.querySelectorAll("article.card").length;
    const first = total === 0 ? 0 : Number(line.dataset.start || "1");
    const last = first === 0 ? 0 : Math.min(total, first + onPage - 1);
    const text = fill(line.dataset.format, { first: String(first), last: String(last), total: String(total) });
    if (line.textContent !== text) line.textContent = text;
  }
  function upsert(data) {
    const list = document.getElementById("cards");
    if (!list) return;
    const only = list.dataset.only;
    if (only && only !== data.key) return;
    const existing = document.getElementById("card-" + data.key);
    if (existing && Number(existing.dataset.version) >= data.version) return;
    // the channel page's stream says whether the card belongs to this page's filters
    const belongs = only ? true : data.match !== undefined ? data.match : OPEN.includes(data.status);
    if (!belongs) {
      if (existing) existing.remove();
      refreshEmpty(list);
      return;
    }
    const node = fragment(data.html);
    node.classList.add("flash");
    if (existing) existing.replaceWith(node);
    if (only && list.dataset.refresh) refreshPart(list.dataset.refresh);
    else if (!only && !existing) {
      // newcomers: at the top of the first page for "newest"/"changed"; appended where the
      // order puts them last (oldest/most overdue first) when this is the last page
      const sort = list.dataset.sort || "due";
      const first = (list.dataset.page || "1") === "1";
      const last = list.dataset.lastPage !== "0";
      if ((sort === "newest" || sort === "updated") && first) list.prepend(node);
      else if (sort !== "newest" && sort !== "updated" && last) list.append(node);
      else { const more = document.getElementById("more"); if (more) more.hidden = false; }
    }
    tick();
    refreshEmpty(list);
  }

  // relative times stay live: every few seconds from the absolute instants in the markup
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const zh = document.documentElement.lang === "zh-CN";
    if (s < 60) return zh ? s + " 秒" : s + " s";
    if (s < 3600) return zh ? Math.floor(s / 60) + " 分钟" : Math.floor(s / 60) + " min";
    if (s < 86400) {
      const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
      return zh ? h + " 小时" + (m ? " " + m + " 分钟" : "") : h + " h" + (m ? " " + m + " min" : "");
    }
    return zh ? Math.floor(s / 86400) + " 天" : Math.floor(s / 86400) + " d";
  }
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
  }
  function tick() {
    const list = document.getElementById("cards");
    if (!list || !list.dataset.tReceived) return;
    const t = list.dataset;
    const now = Date.now();
    function relative(at) {
      const delta = (now - at) / 1000;
      if (Math.abs(delta) < 5) return t.tNow;
      return fill(delta >= 0 ? t.tAgo : t.tIn, { duration: duration(Math.abs(delta)) });
    }
    list.querySelectorAll(".rel[data-at]").forEach((el) => {
      const at = Date.parse(el.dataset.at);
      if (Number.isNaN(at)) return;
      let words;
      if (el.dataset.kind === "received") words = fill(t.tReceived, { ago: relative(at) });
      else if (at <= now) {
        words = fill(t.tOverdue, { duration: duration((now - at) / 1000) });
        el.classList.add("overdue");
        const card = el.closest("article.card");
        if (card) card.classList.add("is-overdue");
      } else words = fill(el.dataset.kind === "reply" ? t.tReply : t.tClaim, { when: relative(at) });
      if (el.textContent !== words) el.textContent = words;
    });
  }
  tick();
  setInterval(tick, 5000);

  // The inquiry page: when its card changes (a reply accepted, a delivery failure), the
  // conversation and timeline below it are fetched again so "sending…" never goes stale.
  async function refreshPart(selector) {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.querySelector(selector);
      const current = document.querySelector(selector);
      if (fresh && current) current.replaceWith(fresh);
    } catch (e) { /* offline: the next change tries again */ }
  }

  // A status menu shows the fields its choice needs: the reason for won/lost, the team's
  // lost reasons, the follow-up date. Nothing is shown before a choice is made.
  function wants(box, value) {
    return (box.dataset.for || "").split(" ").includes(value);
  }
  function showExtras(form) {
    const value = form.querySelector("select[name=value]").value;
    form.querySelectorAll(".extra").forEach((box) => { box.hidden = !wants(box, value); });
    const date = form.querySelector("input[name=date]");
    if (date && !date.value) {
      const tomorrow = new Date(Date.now() + 86400000);
      date.value = tomorrow.toISOString().slice(0, 10);
      date.min = date.value;
    }
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { ok: false, message: response.statusText }; }
    return data;
  }

  async function act(action, value, reason) {
    const data = await post("/web/actions", { action, value: value || "", reason: reason || "" });
    if (data.open_url) { window.location.href = data.open_url; return data; }
    toast(data.message, !data.ok);
    return data;
  }

  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    ev.preventDefault();
    button.disabled = true;
    act(button.dataset.action)
      .then((data) => { if (data && data.ok && button.dataset.then === "reload") window.location.reload(); })
      .finally(() => { button.disabled = false; });
  });

  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (form.classList.contains("select-form")) {
      ev.preventDefault();
      let value = form.querySelector("select[name=value]").value;
      if (!value) return;
      const shown = (name) => {
        const input = form.querySelector("[name=" + name + "]");
        const box = input && input.closest(".extra");
        return input && (!box || !box.hidden) ? input.value.trim() : "";
      };
      const date = shown("date");
      if (date) value = value + ":" + date;
      const code = shown("reason_code");
      const words = shown("reason");
      const reason = code ? (words ? code + ": " + words : code) : words;
      act(form.dataset.action, value, reason);
      return;
    }
    if (form.id === "reply-form") {
      ev.preventDefault();
      const send = document.getElementById("send");
      send.disabled = true;
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" })
        .then((r) => r.json())
        .then((data) => {
          toast(data.message, !data.ok);
          if (data.ok) setTimeout(() => { window.location.href = form.dataset.return; }, 800);
        })
        .finally(() => { send.disabled = false; });
    }
  });

  // Switching templates never silently drops what the rep typed: ask first.
  const body = document.getElementById("body");
  const picker = document.getElementById("template");
  let pickedTemplate = picker ? picker.value : "";
  document.addEventListener("change", (ev) => {
    const target = ev.target;
    if (target.matches("select[name=value]") && target.closest(".select-form")) {
      showExtras(target.closest(".select-form"));
      return;
    }
    if (!target.matches("select[data-autosubmit]")) return;
    if (body && body.value !== body.defaultValue) {
      const title = target.options[target.selectedIndex].text;
      if (!window.confirm(target.dataset.confirm.replace("{title}", title))) {
        target.value = pickedTemplate;  // keep the text and the template it came from
        return;
      }
    }
    pickedTemplate = target.value;
    target.form.submit();
  });

  const list = document.getElementById("cards");
  const live = document.getElementById("live");
  if (list && list.dataset.stream && window.EventSource) {
    const source = new EventSource(list.dataset.stream);
    source.addEventListener("hello", () => { live.className = "live on"; live.textContent = live.dataset.live; document.body.dataset.live = "1"; });
    source.addEventListener("card", (ev) => upsert(JSON.parse(ev.data)));
    // fresh per-status counts after changes: the view tabs follow without a reload
    source.addEventListener("counts", (ev) => {
      const counts = JSON.parse(ev.data);
      document.querySelectorAll("nav.views [data-view]").forEach((tab) => {
        const n = counts[tab.dataset.view];
        const el = tab.querySelector(".count");
        if (el && typeof n === "number" && el.textContent !== String(n)) el.textContent = String(n);
      });
      refreshShowing(list, counts);
    });
    source.onerror = () => { live.className = "live off"; live.textContent = live.dataset.offline; document.body.dataset.live = "0"; };
  }
})();
