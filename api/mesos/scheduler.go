package mesos

// Scheduler API call types (v1/scheduler.proto Call.Type).
const (
	CallSubscribe   = "SUBSCRIBE"
	CallTeardown    = "TEARDOWN"
	CallAccept      = "ACCEPT"
	CallDecline     = "DECLINE"
	CallRevive      = "REVIVE"
	CallSuppress    = "SUPPRESS"
	CallKill        = "KILL"
	CallShutdown    = "SHUTDOWN"
	CallAcknowledge = "ACKNOWLEDGE"
	CallReconcile   = "RECONCILE"
	CallMessage     = "MESSAGE"
	CallRequest     = "REQUEST"
)

// Call is a scheduler API call, POSTed to /api/v1/scheduler.
type Call struct {
	FrameworkID *ID          `json:"framework_id,omitempty"`
	Type        string       `json:"type"`
	Subscribe   *Subscribe   `json:"subscribe,omitempty"`
	Accept      *Accept      `json:"accept,omitempty"`
	Decline     *Decline     `json:"decline,omitempty"`
	Revive      *Revive      `json:"revive,omitempty"`
	Suppress    *Suppress    `json:"suppress,omitempty"`
	Kill        *Kill        `json:"kill,omitempty"`
	Acknowledge *Acknowledge `json:"acknowledge,omitempty"`
	Reconcile   *Reconcile   `json:"reconcile,omitempty"`
	Message     *Message     `json:"message,omitempty"`
}

// Subscribe is Call.Subscribe.
type Subscribe struct {
	FrameworkInfo FrameworkInfo `json:"framework_info"`
}

// Accept is Call.Accept.
type Accept struct {
	OfferIDs   []ID        `json:"offer_ids"`
	Operations []Operation `json:"operations,omitempty"`
	Filters    *Filters    `json:"filters,omitempty"`
}

// Offer operation types.
const (
	OperationLaunch    = "LAUNCH"
	OperationReserve   = "RESERVE"
	OperationUnreserve = "UNRESERVE"
)

// Operation is Offer.Operation: LAUNCH, RESERVE or UNRESERVE.
type Operation struct {
	Type      string     `json:"type"`
	Launch    *Launch    `json:"launch,omitempty"`
	Reserve   *Reserve   `json:"reserve,omitempty"`
	Unreserve *Unreserve `json:"unreserve,omitempty"`
}

// Reserve is Offer.Operation.Reserve: the resources as they are to be,
// each with its new dynamic reservation on top of its stack.
type Reserve struct {
	Resources Resources `json:"resources"`
}

// Unreserve is Offer.Operation.Unreserve: reserved resources of the offer
// to give back.
type Unreserve struct {
	Resources Resources `json:"resources"`
}

// Launch is Offer.Operation.Launch.
type Launch struct {
	TaskInfos []TaskInfo `json:"task_infos"`
}

// Decline is Call.Decline.
type Decline struct {
	OfferIDs []ID     `json:"offer_ids"`
	Filters  *Filters `json:"filters,omitempty"`
}

// Revive is Call.Revive.
type Revive struct {
	Roles []string `json:"roles,omitempty"`
}

// Suppress is Call.Suppress.
type Suppress struct {
	Roles []string `json:"roles,omitempty"`
}

// Kill is Call.Kill.
type Kill struct {
	TaskID     ID          `json:"task_id"`
	AgentID    *ID         `json:"agent_id,omitempty"`
	KillPolicy *KillPolicy `json:"kill_policy,omitempty"`
}

// Acknowledge is Call.Acknowledge.
type Acknowledge struct {
	AgentID ID     `json:"agent_id"`
	TaskID  ID     `json:"task_id"`
	UUID    []byte `json:"uuid"`
}

// Reconcile is Call.Reconcile; no tasks means implicit reconciliation.
type Reconcile struct {
	Tasks []ReconcileTask `json:"tasks,omitempty"`
}

// ReconcileTask is Call.Reconcile.Task.
type ReconcileTask struct {
	TaskID  ID  `json:"task_id"`
	AgentID *ID `json:"agent_id,omitempty"`
}

// Message is Call.Message / Event.Message.
type Message struct {
	AgentID    ID     `json:"agent_id"`
	ExecutorID ID     `json:"executor_id"`
	Data       []byte `json:"data"`
}

// Scheduler API event types (v1/scheduler.proto Event.Type).
const (
	EventSubscribed = "SUBSCRIBED"
	EventOffers     = "OFFERS"
	EventRescind    = "RESCIND"
	EventUpdate     = "UPDATE"
	EventMessage    = "MESSAGE"
	EventFailure    = "FAILURE"
	EventError      = "ERROR"
	EventHeartbeat  = "HEARTBEAT"
)

// Event is one record of the scheduler SUBSCRIBE stream.
type Event struct {
	Type       string      `json:"type"`
	Subscribed *Subscribed `json:"subscribed,omitempty"`
	Offers     *Offers     `json:"offers,omitempty"`
	Rescind    *Rescind    `json:"rescind,omitempty"`
	Update     *Update     `json:"update,omitempty"`
	Message    *Message    `json:"message,omitempty"`
	Failure    *Failure    `json:"failure,omitempty"`
	Error      *Error      `json:"error,omitempty"`
}

// Subscribed is Event.Subscribed.
type Subscribed struct {
	FrameworkID              ID          `json:"framework_id"`
	HeartbeatIntervalSeconds float64     `json:"heartbeat_interval_seconds,omitempty"`
	MasterInfo               *MasterInfo `json:"master_info,omitempty"`
}

// Offers is Event.Offers.
type Offers struct {
	Offers []Offer `json:"offers"`
}

// Rescind is Event.Rescind.
type Rescind struct {
	OfferID ID `json:"offer_id"`
}

// Update is Event.Update.
type Update struct {
	Status TaskStatus `json:"status"`
}

// Failure is Event.Failure.
type Failure struct {
	AgentID *ID `json:"agent_id,omitempty"`
	Status  int `json:"status,omitempty"`
}

// Error is Event.Error.
type Error struct {
	Message string `json:"message"`
}

// StreamIDHeader is the response header of SUBSCRIBE that later calls must echo.
const StreamIDHeader = "Mesos-Stream-Id"
