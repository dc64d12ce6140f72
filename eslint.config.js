// One style for all TypeScript and JavaScript in the repo: neostandard (the
// maintained successor of `standard`, the style js-libp2p's aegir uses), with
// its TypeScript rules. `npm run lint` checks it; `npm run lint:fix` applies it.
import neostandard from 'neostandard'

export default [
  { ignores: ['**/dist/**', '**/node_modules/**', '**/generated/**', '**/target/**', 'packages/client-go/**', 'docs/**'] },
  ...neostandard({ ts: true }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited (a background loop, a fire-and-forget close),
      // also as an arrow function's body
      'no-void': 'off',
      // the wire formats (discovery API, tickets, registrations) are snake_case; variables holding one of their
      // fields keep the field's name
      camelcase: ['error', { properties: 'never', ignoreDestructuring: true, allow: ['^api_key$', '^peer_id$', '^signed_at$', '^refresh_only$'] }],
      // `new Promise((r) => setTimeout(r, ms))` and friends: the name of a resolver says nothing the line does not
      'promise/param-names': 'off',
      // loops on flags that another async task sets (a sampler until `done`, a pump until `stopped`) are the normal
      // shape of our tests and drivers; the rule cannot see writes from closures and flags every one of them
      'no-unmodified-loop-condition': 'off',
      // a hand-written file past 450 lines is split along its seams (generated sources live in generated/, ignored above)
      'max-lines': ['error', { max: 450 }]
    }
  }
]
