// The rtm demo shop: every click is an event posted to `rtm collect`; pop-ups come from
// `rtm serve` as Server-Sent Events the moment the campaign job emits them.
// window.RTM_CONFIG (config.js, written by `rtm shop`): {collect, serve, token, feed}.
"use strict";

const CONFIG = window.RTM_CONFIG;
const SECTIONS = {
  shoes: [["sku-shoe-1", "Trail runner", 89], ["sku-shoe-2", "City sneaker", 69], ["sku-shoe-3", "Rain boot", 54]],
  bags: [["sku-bag-1", "Weekender", 120], ["sku-bag-2", "Tote", 35]],
  hats: [["sku-hat-1", "Wool beanie", 25], ["sku-hat-2", "Sun hat", 30], ["sku-hat-3", "Cap", 19]],
};
const COLORS = ["#e63946", "#f4a261", "#2a9d8f", "#457b9d", "#8ecae6", "#ffb703"];

const $ = (selector) => document.querySelector(selector);
const identity = {
  anonymousId: localStorage.getItem("rtm_anonymous_id") || newId(),
  userId: localStorage.getItem("rtm_user_id"),
  get key() { return this.userId || this.anonymousId; },
};
localStorage.setItem("rtm_anonymous_id", identity.anonymousId);
let cart = JSON.parse(sessionStorage.getItem("rtm_cart") || "[]");

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// --- Events to the collector ------------------------------------------------------

async function track(type, params = {}) {
  const event = {
    event_id: newId(), type, ts: Date.now(), user_id: identity.userId, anonymous_id: identity.anonymousId,
    params, context: { platform: "web", page_url: location.href, user_agent: navigator.userAgent },
  };
  const headers = { "Content-Type": "application/json" };
  if (CONFIG.token) headers.Authorization = `Bearer ${CONFIG.token}`;
  const line = element("li", {}, `${type} ${JSON.stringify(params)}`);
  line.dataset.type = type;
  $("#events").prepend(line);
  try {
    const answer = await fetch(`${CONFIG.collect}/v1/events`, {
      method: "POST", headers, body: JSON.stringify([event]), keepalive: true,
    });
    const result = (await answer.json()).results?.[0];
    line.dataset.status = result ? result.status : `http ${answer.status}`;
    line.append(` → ${line.dataset.status}${result && result.reason ? ": " + result.reason : ""}`);
  } catch (err) {
    line.dataset.status = "error";
    line.append(` → not sent (${err.message}); is rtm collect running at ${CONFIG.collect}?`);
  }
}

// --- Pop-ups from the decisions API -------------------------------------------------

let stream = null;
const popups = [];

function listen() {
  if (stream) stream.close();
  const url = `${CONFIG.serve}/v1/users/${encodeURIComponent(identity.key)}/stream?channel=popup`;
  stream = new EventSource(url);
  stream.addEventListener("message", (message) => {
    popups.push(JSON.parse(message.data));
    showNextPopup();
  });
}

function showNextPopup() {
  const box = $("#popup");
  if (!box.hidden || popups.length === 0) return;
  const trigger = popups.shift();
  box.dataset.campaign = trigger.campaign_id;
  box.dataset.triggerId = trigger.trigger_id;
  box.querySelector(".popup-message").textContent = trigger.message;
  const data = trigger.data || {};
  box.querySelector(".popup-data").textContent =
    data.coupon_code ? `Code ${data.coupon_code}` : data.section ? `See ${data.section}` :
    Array.isArray(data.items) && data.items.length ? `Try ${data.items.join(", ")}` : "";
  box.hidden = false;
}

$("#popup-close").addEventListener("click", () => {
  $("#popup").hidden = true;
  showNextPopup();
});

// Resolves once the feed listens (or after 3 s, or without one): the page's first event
// waits for it, since the feed sends only what arrives after it connected.
function followTriggers() {
  if (!CONFIG.feed) {
    $("#triggers").append(element("li", {}, "start rtm serve with --feed to list every trigger here"));
    return Promise.resolve();
  }
  const feed = new EventSource(`${CONFIG.serve}/v1/triggers/stream`);
  const listening = new Promise((resolve) => {
    feed.addEventListener("open", resolve, { once: true });
    setTimeout(resolve, 3000);
  });
  feed.addEventListener("trigger", (message) => {
    const trigger = JSON.parse(message.data);
    const item = element("li", { class: trigger.holdout ? "holdout" : "" },
      element("span", { class: `channel channel-${trigger.channel}` }, trigger.channel), " ",
      element("b", {}, trigger.campaign_id), ` → ${trigger.user_key}: ${trigger.message}`,
      trigger.holdout ? " (holdout: not delivered)" : "");
    item.dataset.campaign = trigger.campaign_id;
    item.dataset.userKey = trigger.user_key;
    $("#triggers").prepend(item);
  });
  return listening;
}

// --- Pages ----------------------------------------------------------------------------

function productCard([sku, name, price], color) {
  return element("div", { class: "product", "data-sku": sku },
    element("div", { class: "swatch", style: `background:${color}` }),
    element("div", {}, element("b", {}, name)), element("div", {}, `$${price}`),
    element("button", { type: "button", class: "add", onclick: () => addToCart(sku, name, price) }, "Add to cart"));
}

const pages = {
  landing() {
    const featured = Object.values(SECTIONS).map((items) => items[0]);
    return [element("h1", { id: "page-landing" }, "Welcome to the rtm shop"),
      element("p", {}, "Browse a section, fill your cart, check out. Campaigns in campaigns/ react as you go."),
      element("div", { class: "products" }, ...featured.map((p, i) => productCard(p, COLORS[i])))];
  },
  section(name) {
    const items = SECTIONS[name] || [];
    return [element("h1", { id: `page-section-${name}` }, name[0].toUpperCase() + name.slice(1)),
      element("div", { class: "products" }, ...items.map((p, i) => productCard(p, COLORS[(i + 2) % COLORS.length])))];
  },
  cart() {
    const total = cart.reduce((sum, item) => sum + item.price, 0);
    return [element("h1", { id: "page-cart" }, "Your cart"),
      element("ul", {}, ...cart.map((item) => element("li", {}, `${item.name} $${item.price}`))),
      element("p", {}, `${cart.length} items, $${total}`),
      element("button", { id: "checkout-button", type: "button", onclick: () => { location.hash = "#/checkout"; } },
        "Checkout")];
  },
  checkout() {
    const total = cart.reduce((sum, item) => sum + item.price, 0);
    return [element("h1", { id: "page-checkout" }, "Checkout"), element("p", {}, `${cart.length} items, $${total}`),
      element("button", { id: "purchase-button", type: "button", onclick: purchase }, "Buy now")];
  },
};

function route() {
  const [, page = "", detail] = location.hash.split("/");
  document.querySelectorAll("#sections a").forEach((a) => a.classList.toggle("current", a.dataset.section === detail));
  if (page === "section" && SECTIONS[detail]) {
    $("#view").replaceChildren(...pages.section(detail));
    track("page_view", { page: "section", section: detail });
  } else if (page === "cart") {
    $("#view").replaceChildren(...pages.cart());
    track("page_view", { page: "cart", cart_items: cart.length });
  } else if (page === "checkout") {
    $("#view").replaceChildren(...pages.checkout());
    track("checkout", { cart_items: cart.length, total: cart.reduce((sum, item) => sum + item.price, 0) });
  } else {
    $("#view").replaceChildren(...pages.landing());
    track("page_view", { page: "landing" });
  }
}

function saveCart() {
  sessionStorage.setItem("rtm_cart", JSON.stringify(cart));
  $("#cart-count").textContent = cart.length;
}

function addToCart(sku, name, price) {
  cart.push({ sku, name, price });
  saveCart();
  track("add_to_cart", { sku, price, cart_items: cart.length });
}

function purchase() {
  const total = cart.reduce((sum, item) => sum + item.price, 0);
  track("purchase", { order_id: newId(), total, cart_items: cart.length });
  cart = [];
  saveCart();
  $("#view").replaceChildren(element("h1", { id: "page-thanks" }, "Thank you for your order"));
}

function showIdentity() {
  $("#login-form").hidden = Boolean(identity.userId);
  $("#signed-in").hidden = !identity.userId;
  $("#user-name").textContent = identity.userId || "";
}

$("#login-form").addEventListener("submit", (submit) => {
  submit.preventDefault();
  identity.userId = $("#login-name").value.trim();
  if (!identity.userId) return;
  localStorage.setItem("rtm_user_id", identity.userId);
  showIdentity();
  track("login", { method: "password" });
  listen();  // the user key is now the user id
});

$("#logout-button").addEventListener("click", () => {
  identity.userId = null;
  localStorage.removeItem("rtm_user_id");
  showIdentity();
  listen();
});

for (const name of Object.keys(SECTIONS)) {
  const link = element("a", { href: `#/section/${name}` }, name[0].toUpperCase() + name.slice(1));
  link.dataset.section = name;
  $("#sections").append(link);
}
window.addEventListener("hashchange", route);
showIdentity();
saveCart();
listen();
followTriggers().then(route);
