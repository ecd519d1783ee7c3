package apiserver

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pinacle/pinacle-node/internal/api"
	"github.com/pinacle/pinacle-node/internal/cli"
	"github.com/pinacle/pinacle-node/internal/errdefs"
	"github.com/pinacle/pinacle-node/podspec"
)

// errorBody classifies err for the wire.
func errorBody(err error) (api.ErrorBody, int) {
	c := errdefs.Classify(err)
	if errors.Is(err, errMethod) {
		c.HTTP = http.StatusMethodNotAllowed
	}
	b := api.ErrorBody{ErrorBody: cli.ErrorBody{Code: c.Code, Message: err.Error()}}
	var ve *podspec.ValidationError
	if errors.As(err, &ve) {
		b.Fields = ve.Errors
		if len(ve.Errors) == 1 {
			b.Field = ve.Errors[0].Field
		}
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		b.Field = fe.field
	}
	return b, c.HTTP
}

// fieldError marks a request error with the request field it is about.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)}
}
