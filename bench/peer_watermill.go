package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"
)

// watermillTarget is the propagation built the way a Watermill user would
// build it: a publisher adds each write to a stream on unicom's Redis; a
// router handler, subscribed to it in a consumer group, forwards each
// message to a stream on telecom's Redis; a handler subscribed to that one
// applies. Each hop runs cfg.WatermillConsumers subscribers in its group,
// since one subscriber handles one message at a time.
var watermillTarget = target{name: "watermill/redis", kind: kindPeer, transport: "redis", needs: needRedis,
	start: startWatermill}

const (
	wmOutbound = "watermill:outbound"
	wmInbound  = "watermill:inbound"
)

type watermillSystem struct {
	pub    *redisstream.Publisher
	router *message.Router
	done   chan struct{} // closed when the router's Run returns
}

func startWatermill(ctx context.Context, e *env) (system, error) {
	// Watermill's publishers and subscribers close their clients: each
	// gets its own, as in Watermill's examples.
	var servers [2]*redisServer
	for i := range servers {
		srv, err := e.startRedis(ctx)
		if err != nil {
			return nil, err
		}
		servers[i] = srv
	}
	src := func() *goredis.Client { return servers[0].client(e, goredis.Options{}) }
	dst := func() *goredis.Client { return servers[1].client(e, goredis.Options{}) }
	logger := watermill.NopLogger{}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: src()}, logger)
	if err != nil {
		return nil, err
	}
	forwardTo, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: dst()}, logger)
	if err != nil {
		return nil, errors.Join(err, pub.Close())
	}
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		return nil, errors.Join(err, pub.Close(), forwardTo.Close())
	}
	subscriber := func(c *goredis.Client, group string, i int) (message.Subscriber, error) {
		return redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: c, ConsumerGroup: group,
			Consumer: fmt.Sprintf("%s-%d", group, i), DisableIndefiniteInitialBlock: true}, logger)
	}
	for i := range e.cfg.WatermillConsumers {
		sub, err := subscriber(src(), "forward", i)
		if err != nil {
			return nil, errors.Join(err, pub.Close(), forwardTo.Close())
		}
		router.AddHandler(fmt.Sprintf("forward-%d", i), wmOutbound, sub, wmInbound, forwardTo,
			func(msg *message.Message) ([]*message.Message, error) {
				out := message.NewMessage(msg.UUID, msg.Payload)
				out.Metadata = msg.Metadata
				return []*message.Message{out}, nil
			})
		if sub, err = subscriber(dst(), "apply", i); err != nil {
			return nil, errors.Join(err, pub.Close(), forwardTo.Close())
		}
		router.AddConsumerHandler(fmt.Sprintf("apply-%d", i), wmInbound, sub, func(msg *message.Message) error {
			e.apply(msg.Payload)
			return nil
		})
	}
	w := &watermillSystem{pub: pub, router: router, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		_ = router.Run(context.Background())
	}()
	select {
	case <-router.Running():
	case <-w.done:
		return nil, errors.Join(errors.New("watermill router stopped"), pub.Close())
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), w.close())
	}
	return w, nil
}

func (w *watermillSystem) write(_ context.Context, _ int, payload []byte) error {
	return w.pub.Publish(wmOutbound, message.NewMessage(watermill.NewUUID(), payload))
}

// close closes the router, which closes its handlers' subscribers and
// publishers, then the origin's publisher.
func (w *watermillSystem) close() error {
	err := w.router.Close()
	<-w.done
	return errors.Join(err, w.pub.Close())
}
