use phoenix_api::PageParams;
use phoenix_booking::{Error, ListFilter, Status};
use phoenix_db::Pool;
use uuid::Uuid;

use crate::*;

phoenix_db::contract_suite!(
    phoenix_booking::migrations(),
    [
        customers_see_and_cancel_only_their_own_bookings,
        agents_see_their_organizations_bookings_and_support_sees_all,
        an_agent_moved_to_another_agency_no_longer_sees_what_they_booked_for_the_first,
        lists_are_newest_first_in_bounded_pages,
        a_booking_is_found_by_locator_and_any_travellers_last_name,
    ]
);

fn page(limit: u32, cursor: Option<String>) -> PageParams {
    PageParams {
        limit: Some(limit),
        cursor,
    }
}

async fn ids(world: &World, viewer: &phoenix_api::Principal, filter: ListFilter) -> Vec<Uuid> {
    let listed = world.booking.list(viewer, filter, &page(100, None)).await.unwrap();
    listed.items.iter().map(|b| b.id).collect()
}

async fn customers_see_and_cancel_only_their_own_bookings(pool: Pool) {
    let world = world(pool).await;
    let (ann, bob) = (customer(), customer());
    let anns = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)])
        .await;
    let bobs = world
        .confirmed(&bob, vec![world.stay(world.hotel.flexible, 11, 1, 1, 1)])
        .await;
    assert!(matches!(world.booking.get(&bob, anns.id).await, Err(Error::NotFound)));
    assert!(matches!(world.booking.get(&ann, bobs.id).await, Err(Error::NotFound)));
    let cancel = world.booking.request_cancellation(&bob, anns.id, None, false).await;
    assert!(matches!(cancel, Err(Error::NotFound)), "{cancel:?}");
    assert_eq!(ids(&world, &ann, ListFilter::default()).await, [anns.id]);
    assert_eq!(ids(&world, &bob, ListFilter::default()).await, [bobs.id]);
    // Asking for someone else's bookings shows none of them.
    let theirs = ListFilter {
        customer_id: Some(bob.user_id),
        ..ListFilter::default()
    };
    assert!(ids(&world, &ann, theirs).await.is_empty());
    let problem = phoenix_api::Problem::from(Error::NotFound);
    assert_eq!((problem.status.as_u16(), problem.code.as_ref()), (404, "not_found"));
}

async fn agents_see_their_organizations_bookings_and_support_sees_all(pool: Pool) {
    let world = world(pool).await;
    let (agency, rival) = (Uuid::now_v7(), Uuid::now_v7());
    let (desk, colleague, other_desk) = (agent(agency), agent(agency), agent(rival));
    let ann = world.user(&[Role::Customer], None).await;
    let mut body = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    body.customer_id = Some(ann.user_id);
    let for_ann = world.booking.create(&desk, body, &key()).await.unwrap().booking;
    let rivals = world
        .book(&other_desk, vec![world.stay(world.hotel.flexible, 11, 1, 1, 1)], 1)
        .await;
    let own = world
        .book(&ann, vec![world.stay(world.hotel.flexible, 12, 1, 1, 1)], 1)
        .await;

    assert_eq!(world.booking.get(&colleague, for_ann.id).await.unwrap().id, for_ann.id);
    assert!(matches!(
        world.booking.get(&colleague, rivals.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(world.booking.get(&desk, own.id).await, Err(Error::NotFound)));
    assert_eq!(ids(&world, &colleague, ListFilter::default()).await, [for_ann.id]);
    // The customer sees what was booked for them as well as their own.
    assert_eq!(ids(&world, &ann, ListFilter::default()).await, [own.id, for_ann.id]);
    assert_eq!(
        ids(&world, &support(), ListFilter::default()).await,
        [own.id, rivals.id, for_ann.id]
    );
    let for_ann_only = ListFilter {
        customer_id: Some(ann.user_id),
        status: Some(Status::Pending),
    };
    assert_eq!(ids(&world, &admin(), for_ann_only).await, [own.id, for_ann.id]);
    let confirmed_only = ListFilter {
        status: Some(Status::Confirmed),
        ..ListFilter::default()
    };
    assert!(ids(&world, &admin(), confirmed_only).await.is_empty());
}

async fn an_agent_moved_to_another_agency_no_longer_sees_what_they_booked_for_the_first(pool: Pool) {
    let world = world(pool).await;
    let (agency, rival) = (Uuid::now_v7(), Uuid::now_v7());
    let (desk, colleague) = (agent(agency), agent(agency));
    let ann = world.user(&[Role::Customer], None).await;
    let mut body = request(vec![world.stay(world.hotel.flexible, 10, 1, 1, 1)], adults(1));
    body.customer_id = Some(ann.user_id);
    let for_ann = world.booking.create(&desk, body, &key()).await.unwrap().booking;
    assert!(world.confirm_all().await.contains(&for_ann.id));
    let for_ann = world.booking.get(&desk, for_ann.id).await.unwrap();
    // Ann's own booking, made before she too joined the rival agency: it belongs to no organization.
    let anns_own = world
        .confirmed(&ann, vec![world.stay(world.hotel.flexible, 11, 1, 1, 1)])
        .await;

    // An admin moves the desk to the rival agency, or takes the agency away; they sign in again.
    let moved = signed_in_again(&desk, &[Role::Agent], Some(rival));
    let demoted = signed_in_again(&desk, &[Role::Customer], None);
    for former in [&moved, &demoted] {
        assert!(matches!(
            world.booking.get(former, for_ann.id).await,
            Err(Error::NotFound)
        ));
        assert!(ids(&world, former, ListFilter::default()).await.is_empty());
        let anns = ListFilter {
            customer_id: Some(ann.user_id),
            ..ListFilter::default()
        };
        assert!(ids(&world, former, anns).await.is_empty());
        let cancel = world
            .booking
            .request_cancellation(former, for_ann.id, None, false)
            .await;
        assert!(matches!(cancel, Err(Error::NotFound)), "{cancel:?}");
    }
    assert_eq!(
        world.booking.get(&colleague, for_ann.id).await.unwrap(),
        for_ann,
        "still confirmed, nothing refunded"
    );
    assert_eq!(ids(&world, &colleague, ListFilter::default()).await, [for_ann.id]);

    // The customer keeps what was booked for her and what she booked herself, wherever she works now.
    let ann_at_rival = signed_in_again(&ann, &[Role::Agent], Some(rival));
    for ann in [&ann, &ann_at_rival] {
        assert_eq!(world.booking.get(ann, for_ann.id).await.unwrap().id, for_ann.id);
        assert_eq!(world.booking.get(ann, anns_own.id).await.unwrap().id, anns_own.id);
        assert_eq!(ids(&world, ann, ListFilter::default()).await, [anns_own.id, for_ann.id]);
    }
}

async fn lists_are_newest_first_in_bounded_pages(pool: Pool) {
    let world = world(pool).await;
    let ann = customer();
    let mut made = Vec::new();
    for n in 0..5 {
        let item = world.stay(world.hotel.flexible, 10 + n, 1, 1, 1);
        made.push(world.book(&ann, vec![item], 1).await.id);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let listed = world
            .booking
            .list(&ann, ListFilter::default(), &page(2, cursor))
            .await
            .unwrap();
        assert!(listed.items.len() <= 2);
        assert!(
            listed.items.iter().all(|b| b.history.len() == 1),
            "each with its history"
        );
        seen.extend(listed.items.iter().map(|b| b.id));
        cursor = listed.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, made);
    let whole = world
        .booking
        .list(&ann, ListFilter::default(), &page(100, None))
        .await
        .unwrap();
    assert_eq!(whole.items.len(), 5, "the largest page holds all there is");
    assert_eq!(whole.next_cursor, None);
    for refused in [0, 101, 100_000] {
        let answer = world
            .booking
            .list(&ann, ListFilter::default(), &page(refused, None))
            .await;
        assert!(
            matches!(&answer, Err(Error::Invalid(errors)) if errors[0].field == "limit"),
            "a page of {refused} is refused, not bent into range: {answer:?}"
        );
    }
    let bad = world
        .booking
        .list(&ann, ListFilter::default(), &page(2, Some("nonsense".into())))
        .await;
    assert!(matches!(bad, Err(Error::Invalid(_))));
}

async fn a_booking_is_found_by_locator_and_any_travellers_last_name(pool: Pool) {
    let world = world(pool).await;
    let booking = world
        .book(&customer(), vec![world.stay(world.hotel.flexible, 10, 1, 1, 2)], 2)
        .await;
    let locator = booking.locator.as_str();
    for (locator, last_name) in [
        (locator.to_owned(), "Lee"),
        (locator.to_lowercase(), "lee"),
        (format!(" {locator} "), " OKAFOR "),
    ] {
        let found = world.booking.lookup(&locator, last_name).await.unwrap();
        assert_eq!(found.id, booking.id, "{locator} {last_name}");
    }
    for (locator, last_name) in [(locator, "Smith"), (locator, ""), ("AAAAAA", "Lee"), ("nope", "Lee")] {
        let missing = world.booking.lookup(locator, last_name).await;
        assert!(matches!(missing, Err(Error::NotFound)), "{locator} {last_name}");
    }
}
