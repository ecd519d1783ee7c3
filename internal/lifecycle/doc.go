// Package lifecycle is the pod state machine: the states, the transitions
// allowed between them, and what each user operation means in each state.
package lifecycle
