use axum::http::{Method, StatusCode};
use phoenix_api::{Problem, remote};
use phoenix_catalog::Error;
use phoenix_catalog::flight::{Cabin, CabinPlan, FareClass};
use phoenix_catalog::model::{
    AirlineInput, AirportInput, CapacityInput, PricesInput, RatePlanInput, RoomTypeInput, ScheduleInput,
};
use phoenix_db::Pool;
use uuid::Uuid;

use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        hotel_management_is_isolated_per_organization,
        schedule_management_is_isolated_per_organization,
        reference_data_is_for_admins,
        exchange_rates_over_http,
    ]
);

fn forbidden<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    assert!(matches!(result, Err(Error::Forbidden)), "{what}: {result:?}");
}

fn not_found<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    assert!(matches!(result, Err(Error::NotFound(_))), "{what}: {result:?}");
}

pub async fn hotel_management_is_isolated_per_organization(pool: Pool) {
    let world = world(pool).await;
    let (mine, theirs) = (chain(&world).await, chain(&world).await);
    let h = hotel(&world, mine, "Paris", 3, |_| 10_000).await;
    let c = &world.catalog;
    let room = RoomTypeInput {
        name: "Suite".into(),
        max_occupancy: 2,
        beds: String::new(),
        rooms: 1,
    };
    let plan = RatePlanInput {
        room_type_id: h.room_type,
        name: "Stolen".into(),
        meal_plan: phoenix_catalog::hotel::MealPlan::RoomOnly,
        refundable: false,
        free_cancellation_hours: None,
        currency: "EUR".into(),
    };
    let span = (day(12), day(13));
    for outsider in [
        operator(theirs),
        principal(&[Role::Operator], None),
        agent(),
        principal(&[Role::Support], None),
    ] {
        not_found(c.hotel_for_manager(&outsider, h.hotel), "read for write");
        forbidden(
            c.update_hotel(&outsider, h.hotel, hotel_input("Paris")).await,
            "update hotel",
        );
        forbidden(c.deactivate_hotel(&outsider, h.hotel).await, "deactivate hotel");
        forbidden(
            c.create_room_type(&outsider, h.hotel, room.clone()).await,
            "create room type",
        );
        forbidden(
            c.update_room_type(&outsider, h.hotel, h.room_type, room.clone()).await,
            "update room type",
        );
        forbidden(
            c.deactivate_room_type(&outsider, h.hotel, h.room_type).await,
            "deactivate room type",
        );
        let capacity = CapacityInput {
            from: span.0,
            to: span.1,
            rooms: 0,
        };
        forbidden(
            c.set_capacity(&outsider, h.hotel, h.room_type, capacity).await,
            "capacity",
        );
        forbidden(
            c.create_rate_plan(&outsider, h.hotel, plan.clone()).await,
            "create rate plan",
        );
        forbidden(
            c.update_rate_plan(&outsider, h.hotel, h.rate_plan, plan.clone()).await,
            "update rate plan",
        );
        forbidden(
            c.deactivate_rate_plan(&outsider, h.hotel, h.rate_plan).await,
            "deactivate rate plan",
        );
        let prices = PricesInput {
            from: span.0,
            to: span.1,
            amount_minor: 1,
        };
        forbidden(c.set_prices(&outsider, h.hotel, h.rate_plan, prices).await, "prices");
    }
    // An operator cannot create a hotel for another organization; an admin must say whose it is.
    let mut elsewhere = hotel_input("Paris");
    elsewhere.organization_id = Some(theirs);
    forbidden(
        c.create_hotel(&operator(mine), elsewhere.clone()).await,
        "create for another organization",
    );
    assert_eq!(
        invalid_fields(c.create_hotel(&admin(), hotel_input("Paris")).await),
        ["organization_id"]
    );
    assert_eq!(
        c.create_hotel(&admin(), elsewhere).await.unwrap().organization_id,
        theirs
    );
    // Nothing changed: the hotel still sells at its price, and its own operator and admins manage it.
    let unchanged = c.hotel_for_manager(&operator(mine), h.hotel).unwrap();
    assert_eq!(unchanged.room_types.len(), 1);
    assert_eq!(unchanged.rate_plans[0].name, "Flexible");
    assert!(unchanged.hotel.active);
    assert_eq!(
        world
            .inventory
            .item(&phoenix_catalog::hotel::room_item(h.room_type, day(12).0))
            .await
            .unwrap()
            .capacity,
        3
    );
    assert!(c.hotel_for_manager(&admin(), h.hotel).is_ok());
    c.update_hotel(&admin(), h.hotel, hotel_input("Paris")).await.unwrap();
    // An unknown hotel is 404 for everyone.
    not_found(
        c.update_hotel(&operator(mine), Uuid::now_v7(), hotel_input("Paris"))
            .await,
        "unknown hotel",
    );
}

fn schedule(airline: &str) -> ScheduleInput {
    ScheduleInput {
        airline: airline.into(),
        flight_number: format!("{airline}100"),
        origin: "CDG".into(),
        destination: "FRA".into(),
        departure_time: "07:15".into(),
        duration_minutes: 70,
        days: vec![1, 2, 3, 4, 5],
        effective_from: day(5),
        effective_to: day(12),
        currency: "EUR".into(),
        cabins: vec![CabinPlan {
            cabin: Cabin::Economy,
            seats: 100,
            overbooking_limit: 2,
            fares: vec![FareClass {
                code: "Y".into(),
                price_minor: 9_900,
                refundable: true,
                change_fee_minor: 0,
                baggage_pieces: 1,
                booking_limit: 102,
            }],
        }],
    }
}

pub async fn schedule_management_is_isolated_per_organization(pool: Pool) {
    let world = world(pool).await;
    let c = &world.catalog;
    let (mine, theirs) = (airline_org(&world).await, airline_org(&world).await);
    for (code, org) in [("PX", mine), ("QX", theirs)] {
        c.create_airline(
            &admin(),
            AirlineInput {
                code: code.into(),
                name: code.into(),
                organization_id: org,
            },
        )
        .await
        .unwrap();
    }
    let made = c.create_schedule(&operator(mine), schedule("PX")).await.unwrap();
    let outsider = operator(theirs);
    forbidden(
        c.create_schedule(&outsider, schedule("PX")).await,
        "schedule for another's airline",
    );
    not_found(c.schedule_for_manager(&outsider, made.id), "read for write");
    forbidden(c.update_schedule(&outsider, made.id, schedule("PX")).await, "update");
    forbidden(c.deactivate_schedule(&outsider, made.id).await, "deactivate");
    forbidden(c.create_schedule(&agent(), schedule("PX")).await, "agent");
    assert_eq!(
        c.schedule_for_manager(&operator(mine), made.id).unwrap().departures,
        made.departures
    );
    assert!(c.schedule_for_manager(&admin(), made.id).is_ok());
    // Their own airline is theirs to schedule.
    c.create_schedule(&outsider, schedule("QX")).await.unwrap();
}

pub async fn reference_data_is_for_admins(pool: Pool) {
    let world = world(pool).await;
    let c = &world.catalog;
    let airport = AirportInput {
        name: "Test Field".into(),
        city: "Testville".into(),
        country: "FR".into(),
        time_zone: "Europe/Paris".into(),
        latitude: 45.0,
        longitude: 3.0,
        active: true,
    };
    let org = airline_org(&world).await;
    for outsider in [operator(org), agent()] {
        forbidden(c.put_airport(&outsider, "TST", airport.clone()).await, "airport");
        let airline = AirlineInput {
            code: "ZZ".into(),
            name: "Z".into(),
            organization_id: org,
        };
        forbidden(c.create_airline(&outsider, airline).await, "airline");
        forbidden(c.set_fx_rate(&outsider, "EUR", "USD", "1.1").await, "fx rate");
    }
    // Deleting a rate too: it stays, for everyone to read.
    c.set_fx_rate(&admin(), "EUR", "USD", "1.1").await.unwrap();
    for outsider in [operator(org), agent(), super::quote::customer()] {
        forbidden(c.delete_fx_rate(&outsider, "EUR", "USD").await, "delete fx rate");
        let listed = c.fx_rates(Some(&outsider));
        assert_eq!(
            listed
                .iter()
                .map(|r| (&*r.base, &*r.quote, &*r.rate))
                .collect::<Vec<_>>(),
            [("EUR", "USD", "1.1")]
        );
    }
    // Airlines belong to airline organizations.
    let wrong = AirlineInput {
        code: "ZY".into(),
        name: "Y".into(),
        organization_id: chain(&world).await,
    };
    assert_eq!(
        invalid_fields(c.create_airline(&admin(), wrong).await),
        ["organization_id"]
    );
    // An admin adds an airport; it is searchable and schedulable at once.
    c.put_airport(&admin(), "TST", airport.clone()).await.unwrap();
    let found = c
        .airports(&phoenix_catalog::search::AirportQuery {
            q: Some("testv".into()),
            limit: None,
        })
        .unwrap();
    assert_eq!(found.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), ["TST"]);
    c.create_airline(
        &admin(),
        AirlineInput {
            code: "ZZ".into(),
            name: "Zed".into(),
            organization_id: org,
        },
    )
    .await
    .unwrap();
    let mut to_test = schedule("ZZ");
    to_test.destination = "TST".into();
    c.create_schedule(&operator(org), to_test).await.unwrap();
    // Its time zone is now fixed.
    let mut moved = airport;
    moved.time_zone = "Asia/Tokyo".into();
    let refused = c.put_airport(&admin(), "TST", moved).await;
    assert!(
        matches!(refused, Err(Error::Conflict("airport_in_use", _))),
        "{refused:?}"
    );
    // Airport autocomplete ranks exact codes first.
    let lon = c
        .airports(&phoenix_catalog::search::AirportQuery {
            q: Some("lhr".into()),
            limit: Some(3),
        })
        .unwrap();
    assert_eq!(lon[0].code, "LHR");
    let bad = c.airports(&phoenix_catalog::search::AirportQuery {
        q: None,
        limit: Some(50),
    });
    assert_eq!(invalid_fields(bad), ["q", "limit"]);
}

/// The exchange-rate routes as a client calls them: anyone lists, admins set and delete, refusals are problems with
/// the catalog's codes, and the routes are documented.
pub async fn exchange_rates_over_http(pool: Pool) {
    let world = world(pool).await;
    let client = super::quote_remote::http(&super::quote_remote::serve(world.catalog.clone()).await);
    let call = |method: Method, path: &str, body: Option<serde_json::Value>, principal: Option<Principal>| {
        let client = client.clone();
        let path = path.to_owned();
        async move {
            client
                .call::<_, serde_json::Value>(method, &path, body.as_ref(), principal.as_ref())
                .await
        }
    };
    let problem = |result: Result<serde_json::Value, remote::Error>| match result {
        Err(remote::Error::Problem(problem)) => problem,
        other => panic!("expected a problem, got {other:?}"),
    };
    let status_code = |p: &Problem| (p.status.as_u16(), p.code.to_string());
    let staff = admin();
    let rates = "/api/v1/catalog/fx-rates";
    let eur_usd = "/api/v1/catalog/fx-rates/EUR/USD";

    assert_eq!(
        call(Method::GET, rates, None, None).await.unwrap(),
        serde_json::json!([])
    );
    let set = call(
        Method::PUT,
        eur_usd,
        Some(serde_json::json!({"rate": "1.10"})),
        Some(staff),
    )
    .await
    .unwrap();
    assert_eq!(
        (&set["base"], &set["quote"], &set["rate"]),
        (&"EUR".into(), &"USD".into(), &"1.1".into())
    );
    assert_eq!(set["updated_by"], serde_json::json!(staff.user_id));
    assert!(set.get("replaced_opposite").is_none(), "{set}");

    // Anyone lists, signed in or not; only admins see who set a rate.
    let org = chain(&world).await;
    for viewer in [None, Some(agent()), Some(operator(org)), Some(super::quote::customer())] {
        let listed = call(Method::GET, rates, None, viewer).await.unwrap();
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        assert_eq!((&listed[0]["base"], &listed[0]["rate"]), (&"EUR".into(), &"1.1".into()));
        assert!(
            listed[0]["updated_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{listed}"
        );
        assert!(listed[0].get("updated_by").is_none(), "{viewer:?}: {listed}");
    }
    let listed = call(Method::GET, rates, None, Some(admin())).await.unwrap();
    assert_eq!(listed[0]["updated_by"], serde_json::json!(staff.user_id));

    // Deleting is for admins: 401 without credentials, 403 for anyone else, and the rate stays.
    let anonymous = problem(call(Method::DELETE, eur_usd, None, None).await);
    assert_eq!(status_code(&anonymous), (401, "unauthenticated".into()));
    for outsider in [agent(), operator(org), super::quote::customer()] {
        let refused = problem(call(Method::DELETE, eur_usd, None, Some(outsider)).await);
        assert_eq!(status_code(&refused), (403, "forbidden".into()));
    }
    assert_eq!(
        call(Method::GET, rates, None, None)
            .await
            .unwrap()
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // A rate whose inverse would be out of range is refused on `rate`, saying why.
    let absurd = problem(
        call(
            Method::PUT,
            eur_usd,
            Some(serde_json::json!({"rate": "0.0000000001"})),
            Some(admin()),
        )
        .await,
    );
    assert_eq!(status_code(&absurd), (422, "invalid_fields".into()));
    assert_eq!(absurd.errors[0].field, "rate");
    assert!(absurd.errors[0].message.contains("inverse"), "{:?}", absurd.errors);

    // Not a rate of the pair named (the opposite way has one), bad codes: 404 and 422 naming the code.
    let opposite = problem(call(Method::DELETE, "/api/v1/catalog/fx-rates/USD/EUR", None, Some(admin())).await);
    assert_eq!(status_code(&opposite), (404, "not_found".into()));
    let bad = problem(call(Method::DELETE, "/api/v1/catalog/fx-rates/EUR/usd", None, Some(admin())).await);
    assert_eq!(status_code(&bad), (422, "invalid_fields".into()));
    assert_eq!(bad.errors[0].field, "quote");

    // Deleted: 204 with no body, gone from the list, and a second delete is 404.
    match call(Method::DELETE, eur_usd, None, Some(admin())).await {
        // The client expects a JSON body: an empty 204 is "unexpected" to it, and is the answer wanted.
        Err(remote::Error::Unexpected { status, .. }) => assert_eq!(status, StatusCode::NO_CONTENT),
        other => panic!("expected 204, got {other:?}"),
    }
    assert_eq!(
        call(Method::GET, rates, None, None).await.unwrap(),
        serde_json::json!([])
    );
    let again = problem(call(Method::DELETE, eur_usd, None, Some(admin())).await);
    assert_eq!(status_code(&again), (404, "not_found".into()));

    // Documented, with their problems.
    let (_, openapi) = phoenix_catalog::api().split_for_parts();
    let list = openapi.paths.paths[rates].get.as_ref().unwrap();
    assert!(list.responses.responses.contains_key("200"));
    let pair = &openapi.paths.paths["/api/v1/catalog/fx-rates/{base}/{quote}"];
    let delete = pair.delete.as_ref().unwrap();
    for status in ["204", "403", "404", "422"] {
        assert!(delete.responses.responses.contains_key(status), "DELETE {status}");
    }
    let put = pair.put.as_ref().unwrap();
    for status in ["200", "403", "422"] {
        assert!(put.responses.responses.contains_key(status), "PUT {status}");
    }
}
