"use strict";
// Page rendering: the failures a renderer has.

function renderPage(number) {
  throw new TypeError(`page ${number} has no layout`);
}

function layout(name) {
  throw new TypeError(`layout of ${name} is not defined`);
}

function parseSettings(text) {
  return JSON.parse(text);
}

function parseManifest(text) {
  return JSON.parse(text);
}

function ownerName(page) {
  return page.owner.name;
}

function eachPage(sizes) {
  return sizes.map((size) => {
    if (size === 0) throw new RangeError(`size ${size} out of range`);
    return size;
  });
}

class Renderer {
  constructor(scale) {
    this.scale = scale;
  }

  draw(page) {
    return page.width * this.scale;
  }
}

function nest(depth) {
  return nest(depth + 1) + 1;
}

module.exports = { renderPage, layout, parseSettings, parseManifest, ownerName, eachPage, Renderer, nest };
