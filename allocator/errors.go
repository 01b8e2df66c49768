package allocator

import "errors"

// Sentinel errors of the reservation helpers; match them with errors.Is.
var (
	// ErrInvalidRole: the role name is not a valid Mesos role, is "*"
	// where a reservation role is needed, or does not refine the role the
	// resources are already reserved to.
	ErrInvalidRole = errors.New("allocator: invalid role")
	// ErrNoResources: the operation names no resources.
	ErrNoResources = errors.New("allocator: no resources in operation")
	// ErrInsufficientResources: the resources (an offer) hold less
	// unreserved resources than RESERVE asks for.
	ErrInsufficientResources = errors.New("allocator: not enough unreserved resources")
	// ErrNotReserved: UNRESERVE asks for resources the resources do not
	// hold reserved to the role.
	ErrNotReserved = errors.New("allocator: resources not reserved to role")
	// ErrStaticReservation: UNRESERVE asks to take away a static
	// reservation, which only the agent's configuration can do.
	ErrStaticReservation = errors.New("allocator: static reservation cannot be unreserved")
)
