"use strict";
// Jobs: chained causes, aggregate errors and async work.

function query(host) {
  throw new Error(`cannot reach ${host}:5432`);
}

function fetchWithCause(host) {
  try {
    query(host);
  } catch (error) {
    throw new Error(`query failed after 3 attempts on ${host}`, { cause: error });
  }
}

function fetchPlain(host) {
  throw new Error(`query failed after 3 attempts on ${host}`);
}

function checkName(name) {
  if (typeof name !== "string") throw new TypeError(`name ${name} is not a string`);
  throw new RangeError(`name ${name} is too short`);
}

function collect(names) {
  const errors = [];
  for (const name of names) {
    try {
      checkName(name);
    } catch (error) {
      errors.push(error);
    }
  }
  return errors;
}

function validateAll(names) {
  throw new AggregateError(collect(names), `${names.length} names are invalid`);
}

function validateMixed(names) {
  throw new AggregateError(collect(names), `${names.length} names are invalid`);
}

async function step(n) {
  await new Promise((resolve) => setTimeout(resolve, 1));
  throw new Error(`step ${n} timed out`);
}

async function runJob(n) {
  await step(n);
}

module.exports = { fetchWithCause, fetchPlain, validateAll, validateMixed, runJob };
